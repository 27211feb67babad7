/*
 * filter.c - the sensitive-word filter (see filter.h).
 *
 * Three parts:
 *
 * 1. Normalisation, one original code point at a time: NFKC, then full
 *    case folding (libunistring).  A code point may become several (the
 *    ligature U+FB03 becomes "ffi", U+00DF becomes "ss"), so the scanner
 *    feeds the automaton the normalised code points and remembers, for
 *    each, where its original code point starts in the text.  Results for
 *    planes 0 and 1 (everything but rare CJK extensions) are computed once
 *    per process into static tables (about 6 ms, 640 KiB); higher code
 *    points are normalised on the fly.  ASCII bypasses both: its only
 *    change is A-Z to a-z.
 *
 * 2. The automaton (Aho-Corasick) over uint32 code points, built once by
 *    filter_new and immutable afterwards:
 *
 *        words ─normalise─> trie (hash of (state, cp) -> child while
 *        building) ─sort edges─> per-state sorted edge arrays
 *        ─breadth-first─> failure links, dense tables, merged outputs
 *
 *    Each state keeps its goto edges as one sorted run of (cp, target)
 *    pairs in a shared array (linear search for short runs, binary search
 *    for long ones).  Because chat text is mostly ASCII, the root and the
 *    shallowest states with ASCII edges (within 256 KiB per filter) also
 *    get a dense table over the ASCII code points that occur in the words:
 *    the complete transition, failure links already followed, in one
 *    load.  With 1,000 words this doubled the throughput.  Instead
 *    of output lists, every state stores two merged numbers: `outcnt`,
 *    the number of words that end there (its own word plus those of its
 *    failure chain), and `outlen`, the length of the longest of them.  All
 *    words ending at one position are suffixes of the longest, so that one
 *    length gives exactly the span that position's matches cover.
 *
 * 3. Matching and masking.  filter_match stops at the first state with an
 *    output.  filter_mask turns every match into a byte range of the
 *    original text (a ring of recent normalised positions gives the start),
 *    merges overlapping ranges as they arrive (they arrive ordered by end),
 *    then copies the text with each original code point inside a range
 *    replaced by one '*'.
 *
 * Invalid UTF-8 (which callers should not pass) is tolerated: each invalid
 * byte is copied through unmasked and resets the automaton, so no match
 * spans it.
 *
 * Threads: a filter is read-only after filter_new, so any number of
 * threads may match with it at once; the reference count is atomic.  The
 * normalisation table is written once, under pthread_once.
 */
#include "chat/filter.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <uninorm.h>

#include "core/mem.h"
#include "core/utf8.h"

/* ------------------------------------------------------------------------
 * Normalisation
 * ------------------------------------------------------------------------ */

/* The longest normalisation of one code point is 18 (U+FDFA); leave room. */
#define NORM_MAX 32
/* Code points below this have their normalisation in the table. */
#define NORM_TABLE_CPS 0x20000u
/* A table entry is either the single code point a code point becomes, or
 * NORM_MULTI | offset << 5 | length into norm_pool. */
#define NORM_MULTI 0x80000000u
/* Room for every multi-code-point normalisation in planes 0 and 1 (about
 * 4,000 code points with the Unicode version of current libunistring). */
#define NORM_POOL_MAX 32768u

static uint32_t norm_table[NORM_TABLE_CPS];
static uint32_t norm_pool[NORM_POOL_MAX];
static pthread_once_t norm_once = PTHREAD_ONCE_INIT;

/* Normalise cp with libunistring into out (NORM_MAX of room); returns the
 * number of code points.  Should libunistring fail (out of memory), the
 * code point stands for itself. */
static size_t norm_slow(uint32_t cp, uint32_t *out)
{
    uint32_t b1[NORM_MAX], b2[NORM_MAX];
    size_t n1 = NORM_MAX, n2 = NORM_MAX;
    uint32_t *r1 = u32_normalize(UNINORM_NFKC, &cp, 1, b1, &n1);
    if (!r1) {
        out[0] = cp;
        return 1;
    }
    uint32_t *r2 = u32_casefold(r1, n1, NULL, NULL, b2, &n2);
    if (r1 != b1) free(r1);     /* libunistring allocates with malloc */
    if (!r2) {
        out[0] = cp;
        return 1;
    }
    size_t n = n2 < NORM_MAX ? n2 : NORM_MAX;
    memcpy(out, r2, n * sizeof *out);
    if (r2 != b2) free(r2);
    return n;
}

static void norm_build(void)
{
    size_t pool = 0;
    uint32_t tmp[NORM_MAX];
    for (uint32_t cp = 0; cp < NORM_TABLE_CPS; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            norm_table[cp] = cp;    /* never decoded from valid UTF-8 */
            continue;
        }
        size_t n = norm_slow(cp, tmp);
        if (n == 1 && !(tmp[0] & NORM_MULTI)) {
            norm_table[cp] = tmp[0];
        } else if (n < 32 && pool + n <= NORM_POOL_MAX) {
            memcpy(norm_pool + pool, tmp, n * sizeof *tmp);
            norm_table[cp] = NORM_MULTI | (uint32_t)(pool << 5) | (uint32_t)n;
            pool += n;
        } else {
            /* A future Unicode with many more expansions: keep such code
             * points as they are rather than fail. */
            norm_table[cp] = cp;
        }
    }
}

static inline void norm_init(void) { pthread_once(&norm_once, norm_build); }

/* The normalisation of a non-ASCII code point: sets *out (to the table or
 * to scratch, which has NORM_MAX of room) and returns the count. */
static inline size_t norm_cp(uint32_t cp, const uint32_t **out, uint32_t *scratch)
{
    if (cp < NORM_TABLE_CPS) {
        uint32_t v = norm_table[cp];
        if (!(v & NORM_MULTI)) {
            scratch[0] = v;
            *out = scratch;
            return 1;
        }
        *out = norm_pool + ((v & ~NORM_MULTI) >> 5);
        return v & 31u;
    }
    *out = scratch;
    return norm_slow(cp, scratch);
}

static inline uint32_t ascii_fold(uint32_t c) { return c - 'A' < 26u ? c + 32u : c; }

/* ------------------------------------------------------------------------
 * The automaton
 * ------------------------------------------------------------------------ */

#define FILTER_NONE UINT32_MAX
/* Runs of at most this many edges are searched linearly. */
#define FILTER_LINEAR_EDGES 8
/* Dense ASCII tables take at most this many bytes per filter. */
#define FILTER_DENSE_BYTES (256u * 1024u)

typedef struct filter__edge {
    uint32_t cp;
    uint32_t to;
} filter__edge;

typedef struct filter__state {
    uint32_t first;     /* index of its first edge in filter.edges */
    uint32_t count;     /* number of edges, sorted by cp */
    uint32_t fail;      /* failure link; the root's is itself (0) */
    uint32_t outlen;    /* longest word ending here, in normalised cps; 0 none */
    uint32_t outcnt;    /* number of words ending here */
    uint32_t dense;     /* index of its dense ASCII table, or FILTER_NONE */
} filter__state;

struct filter {
    atomic_size_t refs;
    size_t words;               /* distinct words after normalisation */
    uint32_t nstates;
    uint32_t maxlen;            /* longest word, in normalised code points */
    filter__state *states;      /* [nstates]; 0 is the root */
    filter__edge *edges;        /* [nstates - 1]: every state but the root has one parent */
    /* Dense ASCII tables: the complete transition (goto, or where the
     * failure links lead) of a state on an ASCII code point, indexed by the
     * code point's class.  Class 0 gathers the ASCII code points on no edge
     * at all (from anywhere they lead to the root); every other ASCII code
     * point on an edge has a class of its own.  Table 0 belongs to the
     * root; the shallowest states with ASCII edges have the others, as many
     * as FILTER_DENSE_BYTES allows. */
    uint8_t ascii_class[128];
    uint32_t width;             /* classes, entries per table */
    uint32_t *dense;
    uint32_t ndense, max_dense;
};

static inline uint32_t filter__goto(const filter *f, uint32_t s, uint32_t c)
{
    const filter__state *st = &f->states[s];
    const filter__edge *e = f->edges + st->first;
    uint32_t n = st->count;
    if (n <= FILTER_LINEAR_EDGES) {
        for (uint32_t i = 0; i < n; i++)
            if (e[i].cp == c) return e[i].to;
        return FILTER_NONE;
    }
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e[mid].cp < c) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && e[lo].cp == c ? e[lo].to : FILTER_NONE;
}

/* The Aho-Corasick transition: follow failure links until c has an edge,
 * or until a dense table gives the answer at once. */
static inline uint32_t filter__step(const filter *f, uint32_t s, uint32_t c)
{
    for (;;) {
        const filter__state *st = &f->states[s];
        if (c < 128 && st->dense != FILTER_NONE)
            return f->dense[(size_t)st->dense * f->width + f->ascii_class[c]];
        uint32_t t = filter__goto(f, s, c);
        if (t != FILTER_NONE) return t;
        if (s == 0) return 0;
        s = st->fail;
    }
}

/* --- Building -------------------------------------------------------------- */

typedef struct build_edge {
    uint32_t from, cp, to;
} build_edge;

/* The trie under construction.  `map` is an open-addressing hash from
 * (from << 32 | cp) to the edge's index in `edges`. */
typedef struct builder {
    uint32_t *depth;
    uint8_t *terminal;
    uint32_t nstates, cap_states;
    build_edge *edges;
    uint32_t nedges, cap_edges;
    uint64_t *map_keys;
    uint32_t *map_vals;
    size_t map_cap;             /* power of two */
    size_t words;
    uint32_t maxlen;
} builder;

#define MAP_EMPTY UINT64_MAX

static inline size_t map_slot(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

static void map_grow(builder *b)
{
    size_t cap = b->map_cap ? b->map_cap * 2 : 256;
    uint64_t *keys = pl_malloc(cap * sizeof *keys);
    uint32_t *vals = pl_malloc(cap * sizeof *vals);
    for (size_t i = 0; i < cap; i++) keys[i] = MAP_EMPTY;
    for (size_t i = 0; i < b->map_cap; i++) {
        if (b->map_keys[i] == MAP_EMPTY) continue;
        size_t j = map_slot(b->map_keys[i], cap);
        while (keys[j] != MAP_EMPTY) j = (j + 1) & (cap - 1);
        keys[j] = b->map_keys[i];
        vals[j] = b->map_vals[i];
    }
    pl_free(b->map_keys);
    pl_free(b->map_vals);
    b->map_keys = keys;
    b->map_vals = vals;
    b->map_cap = cap;
}

static uint32_t builder_new_state(builder *b, uint32_t depth)
{
    if (b->nstates == b->cap_states) {
        b->cap_states = b->cap_states ? b->cap_states * 2 : 64;
        b->depth = pl_realloc(b->depth, b->cap_states * sizeof *b->depth);
        b->terminal = pl_realloc(b->terminal, b->cap_states * sizeof *b->terminal);
    }
    b->depth[b->nstates] = depth;
    b->terminal[b->nstates] = 0;
    return b->nstates++;
}

/* The child of s on c, created if missing. */
static uint32_t builder_child(builder *b, uint32_t s, uint32_t c)
{
    if ((size_t)b->nedges * 2 >= b->map_cap) map_grow(b);
    uint64_t key = (uint64_t)s << 32 | c;
    size_t j = map_slot(key, b->map_cap);
    while (b->map_keys[j] != MAP_EMPTY) {
        if (b->map_keys[j] == key) return b->edges[b->map_vals[j]].to;
        j = (j + 1) & (b->map_cap - 1);
    }
    uint32_t t = builder_new_state(b, b->depth[s] + 1);
    if (b->nedges == b->cap_edges) {
        b->cap_edges = b->cap_edges ? b->cap_edges * 2 : 64;
        b->edges = pl_realloc(b->edges, b->cap_edges * sizeof *b->edges);
    }
    b->edges[b->nedges] = (build_edge){s, c, t};
    b->map_keys[j] = key;
    b->map_vals[j] = b->nedges++;
    return t;
}

static void builder_add(builder *b, const uint32_t *w, size_t n)
{
    if (!n) return;
    uint32_t s = 0;
    for (size_t i = 0; i < n; i++) s = builder_child(b, s, w[i]);
    if (b->terminal[s]) return;     /* the same word again */
    b->terminal[s] = 1;
    b->words++;
    if (n > b->maxlen) b->maxlen = (uint32_t)n;
}

static int edge_cmp(const void *a, const void *b)
{
    const build_edge *x = a, *y = b;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    if (x->cp != y->cp) return x->cp < y->cp ? -1 : 1;
    return 0;
}

/* Number the ASCII code points found on edges (classes 1...), so dense
 * tables need only one entry per class. */
static void builder_classes(filter *f)
{
    memset(f->ascii_class, 0, sizeof f->ascii_class);
    for (uint32_t i = 0; i + 1 < f->nstates; i++)
        if (f->edges[i].cp < 128) f->ascii_class[f->edges[i].cp] = 1;
    f->width = 1;
    for (uint32_t c = 0; c < 128; c++)
        if (f->ascii_class[c]) f->ascii_class[c] = (uint8_t)f->width++;
    f->max_dense = FILTER_DENSE_BYTES / (f->width * (uint32_t)sizeof(uint32_t));
}

/* Give state s a dense table if it is the root, or has ASCII edges and the
 * budget allows.  Its failure link and those of every shallower state must
 * be final: the table resolves failures through them. */
static void builder_dense(filter *f, uint32_t s, uint32_t *cap)
{
    filter__state *st = &f->states[s];
    const filter__edge *e = f->edges + st->first;
    uint32_t ascii = 0;
    while (ascii < st->count && e[ascii].cp < 128) ascii++;   /* edges are sorted */
    if (s != 0 && (!ascii || f->ndense >= f->max_dense)) return;
    if (f->ndense == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        f->dense = pl_realloc(f->dense, (size_t)*cap * f->width * sizeof *f->dense);
    }
    uint32_t *row = f->dense + (size_t)f->ndense * f->width;
    row[0] = 0;
    for (uint32_t c = 0; c < 128; c++) {
        uint32_t k = f->ascii_class[c];
        if (k) row[k] = s == 0 ? 0 : filter__step(f, st->fail, c);
    }
    for (uint32_t i = 0; i < ascii; i++) row[f->ascii_class[e[i].cp]] = e[i].to;
    st->dense = f->ndense++;
}

/* Turn the trie into the final automaton: sorted edge runs, failure links
 * (breadth first, so a state's failure target is always done before it),
 * dense tables and merged outputs. */
static void builder_finish(builder *b, filter *f)
{
    uint32_t n = b->nstates;
    f->nstates = n;
    f->words = b->words;
    f->maxlen = b->maxlen;
    f->states = pl_calloc(n, sizeof *f->states);
    f->edges = pl_malloc((b->nedges ? b->nedges : 1) * sizeof *f->edges);

    if (b->nedges) qsort(b->edges, b->nedges, sizeof *b->edges, edge_cmp);
    for (uint32_t i = 0; i < b->nedges; i++) {
        filter__state *st = &f->states[b->edges[i].from];
        if (!st->count) st->first = i;
        st->count++;
        f->edges[i] = (filter__edge){b->edges[i].cp, b->edges[i].to};
    }

    for (uint32_t s = 0; s < n; s++) f->states[s].dense = FILTER_NONE;
    builder_classes(f);
    uint32_t dense_cap = 0;
    builder_dense(f, 0, &dense_cap);
    uint32_t *queue = pl_malloc(n * sizeof *queue);
    size_t head = 0, tail = 0;
    const filter__state *root = &f->states[0];
    for (uint32_t i = 0; i < root->count; i++) {
        const filter__edge *e = &f->edges[root->first + i];
        f->states[e->to].fail = 0;
        queue[tail++] = e->to;
    }
    while (head < tail) {
        uint32_t s = queue[head++];
        builder_dense(f, s, &dense_cap);
        filter__state *st = &f->states[s];
        /* The failure target is shallower, so its outputs are final. */
        const filter__state *fs = &f->states[st->fail];
        st->outcnt = b->terminal[s] + fs->outcnt;
        st->outlen = b->terminal[s] ? b->depth[s] : fs->outlen;
        for (uint32_t i = 0; i < st->count; i++) {
            const filter__edge *e = &f->edges[st->first + i];
            f->states[e->to].fail = filter__step(f, st->fail, e->cp);
            queue[tail++] = e->to;
        }
    }
    pl_free(queue);
}

static void builder_free(builder *b)
{
    pl_free(b->depth);
    pl_free(b->terminal);
    pl_free(b->edges);
    pl_free(b->map_keys);
    pl_free(b->map_vals);
}

/* White_Space code points (Unicode PropList) plus U+FEFF, so a byte order
 * mark at the start of a file is trimmed away too. */
static bool is_space(uint32_t c)
{
    return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

/* A growable array of normalised code points: the word being built. */
typedef struct word_buf {
    uint32_t *cp;
    size_t len, cap;
} word_buf;

static void word_push(word_buf *w, const uint32_t *cps, size_t n)
{
    if (w->len + n > w->cap) {
        while (w->len + n > w->cap) w->cap = w->cap ? w->cap * 2 : 64;
        w->cp = pl_realloc(w->cp, w->cap * sizeof *w->cp);
    }
    memcpy(w->cp + w->len, cps, n * sizeof *cps);
    w->len += n;
}

/* Normalise one line of the list (valid UTF-8) and add it as a word,
 * unless it is blank or a comment.  w is scratch space kept across lines,
 * so its memory follows the longest normalised word, not the list. */
static void add_line(builder *b, const uint8_t *line, size_t len, word_buf *w)
{
    /* Trim: [lo, hi) are the bytes from the first to the last non-space
     * code point.  The line was validated, so every decode succeeds. */
    size_t lo = len, hi = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_decode(line + i, len - i, &cp);
        if (!is_space(cp)) {
            if (lo == len) lo = i;
            hi = i + k;
        }
        i += k;
    }
    if (lo >= hi || line[lo] == '#') return;

    w->len = 0;
    uint32_t scratch[NORM_MAX];
    for (size_t i = lo; i < hi;) {
        uint32_t cp;
        i += utf8_decode(line + i, hi - i, &cp);
        if (cp < 128) {
            uint32_t c = ascii_fold(cp);
            word_push(w, &c, 1);
            continue;
        }
        const uint32_t *out;
        size_t k = norm_cp(cp, &out, scratch);
        word_push(w, out, k);
    }
    builder_add(b, w->cp, w->len);
}

filter *filter_new(const char *list, size_t len)
{
    norm_init();
    builder b;
    memset(&b, 0, sizeof b);
    builder_new_state(&b, 0);

    const uint8_t *p = (const uint8_t *)list, *end = p + len;
    word_buf w = {0};
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (utf8_valid(p, ll)) add_line(&b, p, ll, &w);
        p += ll + (nl ? 1 : 0);
    }
    pl_free(w.cp);

    filter *f = PL_NEW(filter);
    atomic_init(&f->refs, 1);
    builder_finish(&b, f);
    builder_free(&b);
    return f;
}

filter *filter_load(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t len = 0, cap = 4096;
    char *data = pl_malloc(cap);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            data = pl_realloc(data, cap);
        }
        size_t n = fread(data + len, 1, cap - len, fp);
        len += n;
        if (n == 0) break;
    }
    if (ferror(fp)) {
        int err = errno ? errno : EIO;
        fclose(fp);
        pl_free(data);
        errno = err;
        return NULL;
    }
    fclose(fp);
    filter *f = filter_new(data, len);
    pl_free(data);
    return f;
}

size_t filter_word_count(const filter *f) { return f ? f->words : 0; }

filter *filter_ref(filter *f)
{
    if (f) atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void filter_unref(filter *f)
{
    if (!f) return;
    /* Release our uses of f; the thread that drops the last reference
     * acquires everyone else's before freeing. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
    pl_free(f->states);
    pl_free(f->edges);
    pl_free(f->dense);
    pl_free(f);
}

/* ------------------------------------------------------------------------
 * Matching and masking
 * ------------------------------------------------------------------------ */

bool filter_match(const filter *f, const char *text, size_t len)
{
    if (!f || f->words == 0) return false;
    norm_init();
    const uint8_t *t = (const uint8_t *)text;
    const filter__state *states = f->states;
    uint32_t s = 0;
    uint32_t scratch[NORM_MAX];
    for (size_t i = 0; i < len;) {
        if (t[i] < 0x80) {
            s = filter__step(f, s, ascii_fold(t[i]));
            if (states[s].outcnt) return true;
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(t + i, len - i, &cp);
        if (!n) {
            s = 0;
            i++;
            continue;
        }
        const uint32_t *out;
        size_t k = norm_cp(cp, &out, scratch);
        for (size_t j = 0; j < k; j++) {
            s = filter__step(f, s, out[j]);
            if (states[s].outcnt) return true;
        }
        i += n;
    }
    return false;
}

typedef struct mask_range {
    size_t start, end;      /* byte offsets, [start, end) */
} mask_range;

/* The matches found so far, as merged byte ranges in order. */
typedef struct masker {
    size_t *ring;           /* start offset of the original cp of each normalised position */
    size_t ring_mask;
    mask_range *ranges;
    size_t nranges, cap;
    size_t matches;
} masker;

/* A match ends with the normalised position pos - 1 (whose original code
 * point ends at byte `end`) and is len normalised code points long. */
static void masker_add(masker *m, size_t pos, uint32_t len, size_t end)
{
    size_t start = m->ring[(pos - len) & m->ring_mask];
    while (m->nranges && start <= m->ranges[m->nranges - 1].end) {
        mask_range *last = &m->ranges[--m->nranges];
        if (last->start < start) start = last->start;
        if (last->end > end) end = last->end;
    }
    if (m->nranges == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->ranges = pl_realloc(m->ranges, m->cap * sizeof *m->ranges);
    }
    m->ranges[m->nranges++] = (mask_range){start, end};
}

size_t filter_mask(const filter *f, const char *text, size_t len, buf *out)
{
    if (!f || f->words == 0) {
        buf_append(out, text, len);
        return 0;
    }
    norm_init();
    const uint8_t *t = (const uint8_t *)text;
    const filter__state *states = f->states;

    /* The ring must hold the last maxlen positions, or every position of
     * this text if it has fewer (a huge word cannot cost every call). */
    size_t ring_local[64];
    size_t ring_size = 64, need = f->maxlen;
    if (len < SIZE_MAX / NORM_MAX && need > len * NORM_MAX) need = len * NORM_MAX;
    while (ring_size < need) ring_size *= 2;
    masker m = {.ring = ring_size == 64 ? ring_local : pl_malloc(ring_size * sizeof(size_t)),
                .ring_mask = ring_size - 1};

    uint32_t s = 0;
    size_t pos = 0;
    uint32_t scratch[NORM_MAX];
    for (size_t i = 0; i < len;) {
        if (t[i] < 0x80) {
            s = filter__step(f, s, ascii_fold(t[i]));
            m.ring[pos++ & m.ring_mask] = i;
            if (states[s].outcnt) {
                m.matches += states[s].outcnt;
                masker_add(&m, pos, states[s].outlen, i + 1);
            }
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(t + i, len - i, &cp);
        if (!n) {
            s = 0;
            i++;
            continue;
        }
        const uint32_t *norm;
        size_t k = norm_cp(cp, &norm, scratch);
        for (size_t j = 0; j < k; j++) {
            s = filter__step(f, s, norm[j]);
            m.ring[pos++ & m.ring_mask] = i;
            if (states[s].outcnt) {
                m.matches += states[s].outcnt;
                masker_add(&m, pos, states[s].outlen, i + n);
            }
        }
        i += n;
    }
    if (m.ring != ring_local) pl_free(m.ring);

    if (!m.matches) {
        buf_append(out, text, len);
        return 0;
    }
    /* Copy the text between ranges; each code point inside one becomes a
     * '*' (ranges hold only valid UTF-8: a match never spans an invalid
     * byte, so counting lead bytes counts code points). */
    buf_reserve(out, len);
    size_t at = 0;
    for (size_t r = 0; r < m.nranges; r++) {
        buf_append(out, t + at, m.ranges[r].start - at);
        for (size_t i = m.ranges[r].start; i < m.ranges[r].end; i++)
            if ((t[i] & 0xC0) != 0x80) buf_appendc(out, '*');
        at = m.ranges[r].end;
    }
    buf_append(out, t + at, len - at);
    pl_free(m.ranges);
    return m.matches;
}

// The shapes of parley's frames and HTTP bodies (docs/protocol.md). JSON
// keys are the protobuf field names; fields the server leaves unset are
// absent, so most fields are optional here.

/** Device kinds of `login` (mutual kick is per user and device kind). */
export type DeviceKind = "web" | "ios" | "android" | "desktop" | "cli" | "bot";

/** A message of a dm (`dm:<a>:<b>`), group or channel (`g:<id>`). */
export interface Message {
  conv: string;
  /** Gapless per conversation, assigned by the server. */
  seq: number;
  /** The receiving user's inbox number (dms and groups; not channels). */
  useq?: number;
  from: string;
  text: string;
  /** Milliseconds since the epoch. */
  ts: number;
  cmid?: string;
}

/** An inbox event that is not a message (`kind`: read, group_joined, ...). */
export interface InboxEvent {
  kind: string;
  conv?: string;
  seq?: number;
  user?: string;
  group?: string;
  ts?: number;
  useq?: number;
}

/** A dm peer read up to `seq`. */
export interface Receipt {
  conv: string;
  user: string;
  seq: number;
  ts?: number;
}

export interface Typing {
  conv: string;
  from: string;
}

export interface Presence {
  user: string;
  online?: boolean;
  last_seen?: number;
}

export interface Kicked {
  reason?: string;
}

export interface Goaway {
  url?: string;
  reason?: string;
}

export interface LoginOk {
  user: string;
  session?: string;
  useq?: number;
  server_ts?: number;
  tenant?: string;
  token?: string;
  expires_at?: number;
}

/** What `send` resolves with: the server's `send_ok` plus the `cmid` used. */
export interface SendAck {
  conv: string;
  seq: number;
  ts: number;
  useq?: number;
  cmid: string;
}

export interface Group {
  group: string;
  name?: string;
  kind?: "group" | "channel" | string;
  owner?: string;
  members?: number;
  created_at?: number;
  admins_post_only?: boolean;
  role?: string;
  last_seq?: number;
}

export interface Member {
  user: string;
  role?: string;
  joined_at?: number;
}

/** One row of the home list. */
export interface Conversation {
  conv: string;
  kind?: "dm" | "group" | "channel" | string;
  /** dm: the other user; otherwise the group id. */
  peer?: string;
  name?: string;
  role?: string;
  last?: Message;
  read_seq?: number;
  unread?: number;
  active_ts?: number;
}

export interface HistoryPage {
  /** Newest first, as the server sends them. */
  msgs: Message[];
  more: boolean;
}

export interface SyncEntry {
  useq: number;
  msg?: Message;
  event?: InboxEvent;
}

export interface ChannelMsgs {
  group: string;
  msgs?: Message[];
  more?: boolean;
}

export interface SyncOk {
  entries?: SyncEntry[];
  more?: boolean;
  channels?: ChannelMsgs[];
  useq?: number;
}

export interface Friend {
  user: string;
  state?: "friends" | "requested" | "pending" | "none" | string;
  since?: number;
  online?: boolean;
  last_seen?: number;
}

export interface User {
  user: string;
  name?: string;
  created_at?: number;
  token?: string;
  expires_at?: number;
}

export interface TokenOk {
  token: string;
  expires_at?: number;
  user: string;
  tenant?: string;
}

/** A frame as it travels: an optional request id and exactly one body. */
export interface Frame {
  id?: number;
  [body: string]: unknown;
}

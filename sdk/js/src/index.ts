// parley-sdk: the WebSocket client, the HTTP API helpers and their types.
export { ParleyClient, newCmid } from "./client.js";
export type { ClientEvents, ClientOptions, ConnectionState, SendOptions, StateChange } from "./client.js";
export { ParleyHttp } from "./http.js";
export type { HttpOptions } from "./http.js";
export { ParleyError } from "./errors.js";
export { MemoryStore, LocalStorageStore, emptyState } from "./store.js";
export type { OutboxEntry, StorageLike, SyncState, SyncStore } from "./store.js";
export { Sequencer } from "./sequencer.js";
export type { InboxItem } from "./sequencer.js";
export { backoffDelay } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export type { WebSocketConstructor, WebSocketLike } from "./websocket.js";
export * from "./types.js";

// gRPC message framing done once for bytes many streams send. grpc-js copies every message
// it sends into a new buffer behind a 5-byte header; for a response shared by a thousand
// streams that is a thousand copies of the same bytes. Here the frame is built once per
// buffer and handed through, where grpc-js's call allows it (see `presendFramed`).

/** Framed copies, by the message they frame (or the view into the frame, see `framedMessage`). */
const framedCopies = new WeakMap<Buffer, Buffer>();
const preframed = new WeakSet<Buffer>();

function register(message: Buffer, framed: Buffer): void {
  framedCopies.set(message, framed);
  preframed.add(framed);
}

/** The message behind a gRPC frame header (uncompressed), built once. */
export function grpcFramed(message: Buffer): Buffer {
  let framed = framedCopies.get(message);
  if (!framed) {
    framed = Buffer.allocUnsafe(message.length + 5);
    framed.writeUInt8(0, 0);
    framed.writeUInt32BE(message.length, 1);
    message.copy(framed, 5);
    register(message, framed);
  }
  return framed;
}

/**
 * Frames `message` and returns the message as a view into its frame: a buffer kept for
 * many sends then holds its bytes once, not once plain and once framed.
 */
export function framedMessage(message: Buffer): Buffer {
  const framed = grpcFramed(message);
  const view = framed.subarray(5);
  register(view, framed);
  return view;
}

type Serializer = (value: unknown) => Buffer;

// This reaches into grpc-js (1.x) internals; test/unit/ads-framing.test.ts fails loudly
// when an installed grpc-js no longer works this way.
/**
 * Lets this call send buffers that are already gRPC-framed as they are. Relies on grpc-js's
 * server call (1.x) framing messages in `serializeMessage`; returns false, and nothing is
 * changed, when the installed grpc-js is not built that way.
 */
export function presendFramed(call: unknown): boolean {
  const inner = (call as { call?: { serializeMessage?: Serializer; sendMessage?: unknown } }).call;
  if (!inner || typeof inner.serializeMessage !== 'function' || typeof inner.sendMessage !== 'function') return false;
  const serialize = inner.serializeMessage.bind(inner);
  inner.serializeMessage = (value: unknown): Buffer => (Buffer.isBuffer(value) && preframed.has(value) ? value : serialize(value));
  return true;
}

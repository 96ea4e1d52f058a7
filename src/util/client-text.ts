// Text that a client sent (a NACK's error, a node id...) bounded before meshd logs,
// stores or shows it: one client can never fill the log or the debug output.

/** `text` cut to `max` characters, saying how much was left out. */
export function clientText(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… [${text.length - max} more characters]`;
}

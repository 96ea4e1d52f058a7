// Structured logging: JSON lines by default (pino), human-readable text on request.
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  format?: 'json' | 'text';
  destination?: NodeJS.WritableStream;
}

function textStream(dest: NodeJS.WritableStream): NodeJS.WritableStream {
  // A small line formatter for `--log-format text`; pino writes one JSON object per line.
  return {
    write(chunk: string): boolean {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        const rec = JSON.parse(line) as Record<string, unknown>;
        const { level, time, msg, component, pid: _pid, hostname: _host, ...rest } = rec;
        const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
        dest.write(`${new Date(Number(time)).toISOString()} ${String(level).padEnd(5)} ${component ? `[${String(component)}] ` : ''}${String(msg)}${extra}\n`);
      }
      return true;
    },
  } as unknown as NodeJS.WritableStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const dest = opts.destination ?? process.stderr;
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: opts.format === 'text' ? pino.stdTimeFunctions.epochTime : pino.stdTimeFunctions.isoTime,
    },
    (opts.format === 'text' ? textStream(dest) : dest) as pino.DestinationStream,
  );
}

/** A logger that drops everything, for tests and pure code paths that take an optional logger. */
export const silentLogger: Logger = pino({ level: 'silent' });

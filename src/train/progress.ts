// A one-line progress bar on a terminal (redrawn in place); otherwise (logs, CI, pipes) a plain line every 5% of the
// way and at the end.

export interface ProgressLine {
  /** Redraws the bar (a terminal) or prints a line at every 5% of `total` (not a terminal). */
  update(done: number, total: number, fields: string): void;
  /** Prints a line above the bar. */
  log(line: string): void;
  /** Ends the bar's line. */
  done(): void;
}

export function createProgress(stream: NodeJS.WriteStream, options: { width?: number } = {}): ProgressLine {
  const tty = stream.isTTY === true;
  const width = options.width ?? 24;
  let drawn = false;
  let lastPrinted = -1;
  const bar = (done: number, total: number): string => {
    const filled = Math.round((width * done) / Math.max(1, total));
    return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
  };
  const clear = (): void => {
    if (tty && drawn) stream.write('\r\x1b[2K');
    drawn = false;
  };
  return {
    update(done, total, fields) {
      const text = `${String(done).padStart(String(total).length)}/${total} ${bar(done, total)} ${fields}`;
      if (tty) {
        clear();
        stream.write(text.slice(0, Math.max(20, (stream.columns ?? 120) - 1)));
        drawn = true;
      } else if (done === total || done < lastPrinted || done - lastPrinted >= total / 20) {
        stream.write(`${text}\n`);
        lastPrinted = done;
      }
    },
    log(line) {
      clear();
      stream.write(`${line}\n`);
    },
    done() {
      if (tty && drawn) stream.write('\n');
      drawn = false;
      lastPrinted = -1;
    },
  };
}

/**
 * A Server-Sent Events parser (the WHATWG "event stream" rules) for a body read with fetch:
 * browsers' EventSource cannot send an Authorization header, so the client reads the stream
 * itself. Browser-safe: no Node imports.
 */

/** One dispatched event. `id` is present only when the event carried an `id:` field. */
export interface SseMessage {
  readonly event: string
  readonly data: string
  readonly id?: string
}

/**
 * Feeds text chunks (already decoded from UTF-8, in order) and returns the events they complete.
 * Lines end with CRLF, LF or CR; a blank line dispatches; `:` lines are comments (heartbeats).
 */
export class SseParser {
  #buffer = ''
  #event = ''
  #data: string[] = []
  #id: string | undefined
  /** A CR ended the last chunk: an LF starting the next one belongs to it. */
  #pendingCr = false

  push(chunk: string): SseMessage[] {
    let text = chunk
    if (this.#pendingCr && text.startsWith('\n')) text = text.slice(1)
    this.#pendingCr = false
    const out: SseMessage[] = []
    let buffer = this.#buffer + text
    for (;;) {
      const match = /\r\n|\n|\r/.exec(buffer)
      if (match === null) break
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (match[0] === '\r' && match.index === buffer.length - 1) this.#pendingCr = true
      const line = buffer.slice(0, match.index)
      buffer = buffer.slice(match.index + match[0].length)
      const message = this.#line(line)
      if (message !== undefined) out.push(message)
    }
    this.#buffer = buffer
    return out
  }

  #line(line: string): SseMessage | undefined {
    if (line === '') {
      if (this.#data.length === 0 && this.#id === undefined) {
        this.#event = ''
        return undefined
      }
      const message: SseMessage = {
        event: this.#event === '' ? 'message' : this.#event,
        data: this.#data.join('\n'),
        ...(this.#id === undefined ? {} : { id: this.#id }),
      }
      this.#event = ''
      this.#data = []
      this.#id = undefined
      return message
    }
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') this.#event = value
    else if (field === 'data') this.#data.push(value)
    else if (field === 'id' && !value.includes('\0')) this.#id = value
    return undefined
  }
}

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of an S3 server that can hold a response: the upstream has stored the object, but the
 * writer never hears so. Killing the writer then is the hardest moment for a crash: the work is done and unrecorded.
 */
export interface S3Gate {
  endpoint: string;
  /** Paths of the PUTs that went through, in order (a retried write shows up twice). */
  puts: string[];
  /** Holds the answer to the next PUT whose path matches; resolves with that path once the upstream has stored it. */
  holdNext(match: RegExp): Promise<string>;
  /** Drops the held answers: their writers are gone. */
  releaseHeld(): void;
  close(): Promise<void>;
}

export async function startS3Gate(upstream: string): Promise<S3Gate> {
  const target = new URL(upstream);
  const puts: string[] = [];
  const held: http.ServerResponse[] = [];
  let hold: { match: RegExp; resolve: (path: string) => void } | undefined;

  const server = http.createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (chunk: Buffer) => body.push(chunk));
    req.on('end', () => {
      const headers = { ...req.headers };
      delete headers.expect; // the proxy has the whole body already
      const forward = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            const url = req.url ?? '';
            if (req.method === 'PUT') puts.push(url);
            if (hold && req.method === 'PUT' && hold.match.test(url)) {
              const { resolve } = hold;
              hold = undefined;
              held.push(res);
              resolve(url);
              return;
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(Buffer.concat(chunks));
          });
        },
      );
      forward.on('error', (err) => {
        res.writeHead(502);
        res.end(String(err));
      });
      forward.end(Buffer.concat(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const releaseHeld = () => {
    for (const res of held.splice(0)) res.destroy();
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    puts,
    holdNext(match) {
      return new Promise((resolve) => (hold = { match, resolve }));
    },
    releaseHeld,
    async close() {
      releaseHeld();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

"""Writes the inputs of bench/formats.bench.ts with the reference writers: python3 formats_writer.py IN.json OUT_DIR.

IN.json holds {"texts": [...], "pages": [...]}: texts become a zstd Parquet file (and the same texts, joined, as zstd
frames of 1 MiB for the baseline), pages the HTML responses of a .warc.gz with one gzip member per record.
"""

import io
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

spec = json.load(open(sys.argv[1], encoding='utf-8'))
out = sys.argv[2]
texts = spec['texts']
table = pa.table({'id': [f'doc-{i}' for i in range(len(texts))], 'text': texts})
pq.write_table(table, os.path.join(out, 'corpus.parquet'), compression='zstd', row_group_size=2000)
# The same text as zstd frames of 1 MiB (Parquet's default page size), each decompressed on its own by the baseline.
joined = '\n'.join(texts).encode('utf-8')
PAGE = 1 << 20
frames = []
with open(os.path.join(out, 'text.zst'), 'wb') as f:
    for start in range(0, len(joined), PAGE):
        raw = joined[start : start + PAGE]
        frame = pa.compress(raw, codec='zstd', asbytes=True)
        f.write(frame)
        frames.append([len(frame), len(raw)])
with open(os.path.join(out, 'text.frames.json'), 'w') as f:
    json.dump(frames, f)

with open(os.path.join(out, 'crawl.warc.gz'), 'wb') as fh:
    writer = WARCWriter(fh, gzip=True)
    for i, page in enumerate(spec['pages']):
        body = page.encode('utf-8')
        http = StatusAndHeaders('200 OK', [('Content-Type', 'text/html; charset=utf-8')], protocol='HTTP/1.1')
        record = writer.create_warc_record(
            f'https://example.com/page/{i}', 'response', payload=io.BytesIO(body), http_headers=http
        )
        writer.write_record(record)

"""Writes the Parquet and WARC inputs of test/collect-formats.test.ts with the reference writers (pyarrow, warcio).

Usage: python3 format-writers.py OUT_DIR. Prints a JSON object with what the tests need to know about the files
(byte offsets of corrupted parts, row-group boundaries).
"""

import gzip
import io
import json
import os
import sys
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
facts = {}

# --- Parquet -----------------------------------------------------------------------------------------------------

ROWS = 8
meta_type = pa.struct([('lang', pa.string()), ('score', pa.float64())])
content_type = pa.struct([('body', pa.string()), ('words', pa.int32())])


def table():
    texts = [f'Row {i} says hello from Parquet.' if i != 5 else None for i in range(ROWS)]
    return pa.table(
        {
            'doc_id': pa.array([f'doc-{i}' if i != 2 else None for i in range(ROWS)], pa.string()),
            'text': pa.array(texts, pa.string()),
            'written': pa.array(
                [datetime(2024, 1, 1 + i, 12, 0, tzinfo=timezone.utc) for i in range(ROWS)], pa.timestamp('ms', tz='UTC')
            ),
            'meta': pa.array([{'lang': 'en', 'score': i / 4} for i in range(ROWS)], meta_type),
            'content': pa.array([{'body': f'Nested body {i}.', 'words': 3} for i in range(ROWS)], content_type),
        }
    )


for codec in ['snappy', 'gzip', 'zstd', 'brotli']:
    pq.write_table(table(), os.path.join(out, f'rows-{codec}.parquet'), compression=codec, row_group_size=3)

# One file with a corrupt data page in row group 1 (of 0, 1, 2): its 'text' column chunk is overwritten with junk.
plain = os.path.join(out, 'corrupt-page.parquet')
pq.write_table(table(), plain, compression='snappy', row_group_size=3)
md = pq.ParquetFile(plain).metadata
column = md.row_group(1).column(1)
start = column.dictionary_page_offset or column.data_page_offset
with open(plain, 'r+b') as f:
    f.seek(start)
    f.write(b'\xff' * column.total_compressed_size)
facts['corruptPage'] = {'rowGroup': 1, 'start': start, 'end': start + column.total_compressed_size}

# A footer that does not parse: the thrift metadata before the trailing length and magic is overwritten.
footer = os.path.join(out, 'corrupt-footer.parquet')
pq.write_table(table(), footer, compression='snappy', row_group_size=3)
size = os.path.getsize(footer)
with open(footer, 'r+b') as f:
    f.seek(size - 8)
    length = int.from_bytes(f.read(4), 'little')
    f.seek(size - 8 - length)
    f.write(b'\xee' * length)

# A Parquet file without the extension, found by its magic.
pq.write_table(table(), os.path.join(out, 'no-extension'), compression='zstd', row_group_size=4)

# --- WARC --------------------------------------------------------------------------------------------------------

ARTICLE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Whale Songs | Ocean Weekly</title>
<style>body { font-family: serif; }</style>
<script>window.tracking = { id: 42 };</script></head>
<body>
<header><a href="/">Ocean Weekly</a> <nav><a href="/news">News</a> <a href="/about">About us</a></nav></header>
<main><article>
<h1>Whale Songs</h1>
<p>Humpback whales sing long, complex songs that travel for kilometres through the water. Researchers have
recorded these songs for decades, and each population seems to share a song that slowly changes over time.</p>
<p>Only the males sing, mostly during the breeding season. A single song can last twenty minutes, and a singer may
repeat it for hours. Why they sing is still debated: to attract mates, to warn rivals, or both.</p>
<p>New recordings from the South Pacific suggest that songs spread from one population to another, eastward, like a
fashion, within a couple of years.</p>
</article></main>
<footer>Copyright 2024 Ocean Weekly. <a href="/privacy">Privacy</a></footer>
<script>console.log('analytics');</script>
</body></html>
"""

LATIN1 = """<html><head><title>Caf\u00e9 cr\u00e8me</title></head><body>
<p>Le caf\u00e9 na\u00eff de la rue est ouvert tous les jours, m\u00eame le dimanche. On y sert une cr\u00e8me br\u00fbl\u00e9e.</p>
</body></html>
"""

CYRILLIC = """<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">
<title>\u041f\u0440\u0438\u0432\u0435\u0442</title></head><body>
<p>\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u042d\u0442\u043e \u0441\u0442\u0440\u0430\u043d\u0438\u0446\u0430 \u0432 \u043a\u043e\u0434\u0438\u0440\u043e\u0432\u043a\u0435 windows-1251.</p>
</body></html>
"""

EMPTY = """<html><head><title>Nothing here</title><script>var a = 1;</script></head><body>
<nav><a href="/">Home</a></nav><script>document.write('x')</script></body></html>
"""

PDF = b'%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n'


def response(writer, n, uri, body, content_type, date, status='200 OK'):
    http = StatusAndHeaders(
        status, [('Content-Type', content_type), ('Content-Length', str(len(body)))], protocol='HTTP/1.1'
    )
    record = writer.create_warc_record(
        uri,
        'response',
        payload=io.BytesIO(body),
        http_headers=http,
        warc_headers_dict={'WARC-Date': date, 'WARC-Record-ID': f'<urn:uuid:00000000-0000-0000-0000-{n:012d}>'},
    )
    writer.write_record(record)


def write_warc(path, gzipped):
    offsets = []
    with open(path, 'wb') as fh:
        writer = WARCWriter(fh, gzip=gzipped)

        def mark():
            fh.flush()
            offsets.append(fh.tell())

        mark()
        info = writer.create_warcinfo_record('crawl.warc', {'software': 'flywheel-test'})
        info.rec_headers.replace_header('WARC-Record-ID', '<urn:uuid:00000000-0000-0000-0000-000000000000>')
        info.rec_headers.replace_header('WARC-Date', '2024-03-01T00:00:00Z')
        writer.write_record(info)
        mark()
        response(writer, 1, 'https://example.com/whales', ARTICLE.encode('utf-8'), 'text/html; charset=utf-8',
                 '2024-03-01T10:00:00Z')
        mark()
        request = writer.create_warc_record(
            'https://example.com/whales',
            'request',
            payload=io.BytesIO(b''),
            http_headers=StatusAndHeaders('GET /whales HTTP/1.1', [('Host', 'example.com')], is_http_request=True),
            warc_headers_dict={'WARC-Date': '2024-03-01T10:00:00Z',
                               'WARC-Record-ID': '<urn:uuid:00000000-0000-0000-0000-000000000002>'},
        )
        writer.write_record(request)
        mark()
        response(writer, 3, 'https://example.com/robots.txt', b'User-agent: *\nDisallow: /private\n',
                 'text/plain', '2024-03-01T10:01:00Z')
        mark()
        response(writer, 4, 'https://example.com/report.pdf', PDF, 'application/pdf', '2024-03-01T10:02:00Z')
        mark()
        response(writer, 5, 'https://example.fr/cafe', LATIN1.encode('latin-1'), 'text/html; charset=ISO-8859-1',
                 '2024-03-01T10:03:00Z')
        mark()
        response(writer, 6, 'https://example.ru/privet', CYRILLIC.encode('windows-1251'), 'text/html',
                 '2024-03-01T10:04:00Z')
        mark()
        response(writer, 7, 'https://example.com/klingon', b'<html><body><p>Qapla!</p></body></html>',
                 'text/html; charset=x-klingon', '2024-03-01T10:05:00Z')
        mark()
        response(writer, 8, 'https://example.com/empty', EMPTY.encode('utf-8'), 'text/html; charset=utf-8',
                 '2024-03-01T10:06:00Z')
        mark()
        response(writer, 9, 'http://example.com/', b'', 'text/html', '2024-03-01T10:07:00Z',
                 status='301 Moved Permanently')
        mark()
    return offsets


facts['warcGzOffsets'] = write_warc(os.path.join(out, 'crawl.warc.gz'), True)
facts['warcOffsets'] = write_warc(os.path.join(out, 'crawl.warc'), False)

data = open(os.path.join(out, 'crawl.warc.gz'), 'rb').read()
offsets = facts['warcGzOffsets']

# The whole file cut in the middle of the latin-1 page's record (record 5), as an interrupted download leaves it.
cut = (offsets[5] + offsets[6]) // 2
with open(os.path.join(out, 'truncated.warc.gz'), 'wb') as f:
    f.write(data[:cut])

# The text/plain record's gzip member cut short, the members after it intact.
with open(os.path.join(out, 'member-cut.warc.gz'), 'wb') as f:
    f.write(data[: offsets[3] + (offsets[4] - offsets[3]) // 2] + data[offsets[4]:])

# An uncompressed WARC with a record whose header block is not a WARC header, between two good records.
plain_warc = open(os.path.join(out, 'crawl.warc'), 'rb').read()
woff = facts['warcOffsets']
bad = b'WARC/1.0\r\nthis line is not a header\r\nWARC-Type: response\r\nContent-Length: many\r\n\r\nxyz\r\n\r\n'
with open(os.path.join(out, 'bad-header.warc'), 'wb') as f:
    f.write(plain_warc[: woff[3]] + bad + plain_warc[woff[3]:woff[4]])
facts['badHeaderOffset'] = woff[3]

print(json.dumps(facts))

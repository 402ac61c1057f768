"""Reads Flywheel shards with an independent reader and prints one JSON line per sample.

With the `webdataset` library installed, its default decoders are used (the reference reader); otherwise Python's
own tarfile and a minimal NPY parser. Usage: read-webdataset.py SHARD.tar [...]
"""
import io
import json
import struct
import sys
import tarfile


def npy_values(data):
    assert data[:6] == b"\x93NUMPY", "bad NPY magic"
    header_len = struct.unpack("<H", data[8:10])[0]
    header = data[10 : 10 + header_len].decode("latin1")
    assert (10 + header_len) % 64 == 0, "NPY data not 64-byte aligned"
    descr = header.split("'descr': '")[1].split("'")[0]
    size = {"<u2": 2, "<u4": 4}[descr]
    body = data[10 + header_len :]
    fmt = {2: "H", 4: "I"}[size]
    return descr, list(struct.unpack("<%d%s" % (len(body) // size, fmt), body))


def with_tarfile(paths):
    for path in paths:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            for i in range(0, len(members), 2):
                j, n = members[i], members[i + 1]
                key = j.name.split(".", 1)[0]
                assert j.name == key + ".json" and n.name == key + ".tokens.npy", (j.name, n.name)
                meta = json.loads(tar.extractfile(j).read())
                descr, values = npy_values(tar.extractfile(n).read())
                yield {"key": key, "meta": meta, "dtype": descr, "count": len(values), "last": values[-1], "reader": "python tarfile"}


def with_webdataset(paths):
    import webdataset as wds

    for sample in wds.WebDataset(paths, shardshuffle=False, empty_check=False).decode():
        tokens = sample["tokens.npy"]
        yield {
            "key": sample["__key__"],
            "meta": sample["json"],
            "dtype": tokens.dtype.str,
            "count": int(tokens.shape[0]),
            "last": int(tokens[-1]),
            "reader": "python webdataset",
        }


def main():
    paths = sys.argv[1:]
    try:
        import webdataset  # noqa: F401
        import numpy  # noqa: F401

        samples = with_webdataset(paths)
    except ImportError:
        samples = with_tarfile(paths)
    for s in samples:
        print(json.dumps(s))


main()

"""The vendored faster-fifo suite is upstream's file with nothing but its import changed."""
import hashlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
#: sha256 of cpp_faster_fifo/tests/test_faster_fifo.py at faster-fifo commit 72ca2ad82667
UPSTREAM_SHA256 = "dc117391bdfd0d36fee637520315f4d5186b08c1e371b528a948eea9a6faa83b"


def test_vendored_faster_fifo_suite_differs_from_upstream_only_by_its_import():
    with open(os.path.join(HERE, "test_upstream_faster_fifo.py"), "rb") as f:
        text = f.read()
    body = text[text.index(b"\nimport logging\n") + 1:]      # after our header
    assert body.count(b"from ipcfast.faster_fifo import Queue\n") == 1
    upstream = body.replace(b"from ipcfast.faster_fifo import Queue\n", b"from faster_fifo import Queue\n")
    assert hashlib.sha256(upstream).hexdigest() == UPSTREAM_SHA256

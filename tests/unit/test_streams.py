import io
import os

import pytest

from chalicelib.streams import ReadAhead


def test_reads_everything_in_order_with_short_and_exact_reads():
    data = os.urandom(1_000_003)
    reader = ReadAhead(io.BytesIO(data), chunk_size=65536, depth=3)
    out = bytearray()
    sizes = [100, 70000, -1, 65536, 1]
    i = 0
    while chunk := reader.read(sizes[i % len(sizes)]):
        out += chunk
        i += 1
    assert bytes(out) == data
    assert reader.read(10) == b""
    reader.close()


def test_errors_of_the_source_surface_in_read():
    class Broken:
        calls = 0

        def read(self, n):
            self.calls += 1
            if self.calls > 2:
                raise ConnectionError("reset by peer")
            return b"x" * n

    reader = ReadAhead(Broken(), chunk_size=10)
    assert reader.read(10) == b"x" * 10 and reader.read(10) == b"x" * 10
    with pytest.raises(ConnectionError):
        reader.read(10)


def test_close_stops_the_thread_when_the_reader_gives_up_early():
    class Endless:
        def read(self, n):
            return b"y" * n

    reader = ReadAhead(Endless(), chunk_size=1024, depth=2)
    reader.read(10)
    assert reader._thread.is_alive()
    reader.close()
    assert not reader._thread.is_alive()  # its own thread, not a count of everyone's

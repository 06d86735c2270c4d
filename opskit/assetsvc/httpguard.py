"""Request header limits, enforced in the HTTP protocol before any header reaches the app.

uvicorn's httptools protocol keeps every header a client sends: no limit on their count or size. This
subclass counts them as the parser reports them and answers 431 (and closes the connection) past either
limit; raw bytes that arrive while a request's head is still open are bounded too, so one endless
header cannot fill memory before the parser reports it.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# a read can hold body bytes after the head: the raw-bytes guard allows this much beyond the limit
READ_SLACK = 256 * 1024


class _TooLarge(Exception):
    pass


def guarded_protocol(max_header_bytes: int, max_headers: int) -> type[HttpToolsProtocol]:
    class Guarded(HttpToolsProtocol):
        _head_bytes = 0
        _head_fields = 0
        _head_raw = 0
        _head_open = True
        _refusal = ""

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = self._head_fields = 0

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_fields += 1
            self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF, as on the wire
            if self._head_fields > max_headers:
                self._refusal = f"more than {max_headers} request header fields"
            elif self._head_bytes > max_header_bytes:
                self._refusal = f"request headers larger than {max_header_bytes} bytes"
            if self._refusal:
                raise _TooLarge  # httptools stops parsing; uvicorn then calls send_400_response
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._head_open = False
            self._head_raw = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._head_open = True

        def data_received(self, data: bytes) -> None:
            if self._refusal:
                return
            if self._head_open:
                self._head_raw += len(data)
                if self._head_raw > max_header_bytes + READ_SLACK:
                    self._refusal = f"request headers larger than {max_header_bytes} bytes"
                    self.send_400_response(self._refusal)
                    return
            super().data_received(data)

        def send_400_response(self, msg: str) -> None:
            # uvicorn answers what httptools cannot parse in plain text: JSON here, like every other error
            status = b"431 Request Header Fields Too Large" if self._refusal else b"400 Bad Request"
            body = json.dumps({"error": self._refusal or "invalid HTTP request"}).encode()
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
            )
            self.transport.close()

    return Guarded


#!/usr/bin/env python3
"""A runnable example client of jidgate's WebSocket facade (docs/facade.md).

    pip install websockets
    python3 facade_client.py ws://127.0.0.1:8080/ws ACCESS_TOKEN PEER_UID [--zlib]

It opens a session (the access token in the query), draws the "first
screen" (session.start), sends PEER_UID a text message, waits for a
message from anyone, acknowledges its push (session.ack) and prints a JSON
summary. With --zlib every frame, both ways, is raw deflate (?usezlib=1).

Replies can come out of order and pushes between them: requests carry a
numbered cdata, and pushes wait in a queue until asked for.
"""

import asyncio
import itertools
import json
import sys
import zlib

from websockets.asyncio.client import connect


class FacadeError(Exception):
    def __init__(self, reply):
        super().__init__(f"errno {reply['errno']}: {reply['error']}")
        self.errno = reply["errno"]


class Facade:
    def __init__(self, ws, compressed):
        self.ws = ws
        self.compressed = compressed
        self.numbers = itertools.count(1)
        self.replies = {}
        self.pushes = []

    async def _send(self, obj):
        text = json.dumps(obj, ensure_ascii=False)
        if self.compressed:
            enc = zlib.compressobj(wbits=-15)  # raw deflate, no zlib header
            await self.ws.send(enc.compress(text.encode()) + enc.flush())
        else:
            await self.ws.send(text)

    async def _frame(self):
        data = await asyncio.wait_for(self.ws.recv(), 10)
        if self.compressed:
            data = zlib.decompress(data, wbits=-15).decode()
        return json.loads(data)

    async def call(self, func, **parm):
        """Calls func and returns its result; raises FacadeError on errno != 0."""
        cdata = f"py{next(self.numbers)}"
        await self._send({"func": func, "parm": parm, "cdata": cdata})
        while cdata not in self.replies:
            frame = await self._frame()
            if frame["push"]:
                self.pushes.append(frame)
            else:
                self.replies[frame["cdata"]] = frame
        reply = self.replies.pop(cdata)
        if reply["errno"] != 0:
            raise FacadeError(reply)
        return reply["result"]

    async def push(self, type_):
        """The next push of type_ (others stay queued)."""
        while True:
            for i, p in enumerate(self.pushes):
                if p["type"] == type_:
                    return self.pushes.pop(i)
            frame = await self._frame()
            if frame["push"]:
                self.pushes.append(frame)
            else:
                self.replies[frame["cdata"]] = frame


async def main(url, token, peer, compressed):
    query = f"access_token={token}" + ("&usezlib=1" if compressed else "")
    async with connect(f"{url}?{query}") as ws:
        facade = Facade(ws, compressed)
        first = await facade.call("session.start")
        sent = await facade.call("message.send", to=peer, content="hello from python")
        push = await facade.push("newmsg")
        await facade.call("session.ack", pid=push["pid"])
        try:
            await facade.call("no.such.func")
        except FacadeError as e:
            unknown = e.errno
        print(json.dumps({
            "uid": first["user"]["uid"],
            "sent": sent["msgid"],
            "got": push["data"]["message"],
            "unknown_func_errno": unknown,
        }, ensure_ascii=False))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--zlib"]
    if len(args) != 3:
        sys.exit(__doc__)
    asyncio.run(main(*args, compressed="--zlib" in sys.argv))

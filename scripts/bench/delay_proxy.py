"""A TCP proxy that holds every chunk DELAY_MS in each direction, in order: a relay across a network
(DELAY_MS each way is a round trip of twice that) for a benchmark on one machine, where the kernel
has no netem. Usage: delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS (both on 127.0.0.1)."""
import asyncio
import sys
import time

LISTEN, TARGET, DELAY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000


async def pipe(reader, writer):
    chunks = asyncio.Queue()

    async def read():
        while True:
            data = await reader.read(65536)
            await chunks.put((time.monotonic() + DELAY, data))
            if not data:
                return

    async def write():
        while True:
            due, data = await chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(read(), write(), return_exceptions=True)


async def handle(reader, writer):
    target_reader, target_writer = await asyncio.open_connection("127.0.0.1", TARGET)
    await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer), return_exceptions=True)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())

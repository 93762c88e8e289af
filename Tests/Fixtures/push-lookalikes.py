#!/usr/bin/python3
"""Honest encrypted streams that push to their clients, for the job-push shape's hard negatives.

  push-lookalikes.py ws-chat-server PORT CERT KEY SECONDS   a chat room over WebSocket (TLS)
  push-lookalikes.py ws-chat-client PORT SECONDS            a member who chats and reads
  push-lookalikes.py grpc-server PORT CERT KEY SECONDS      a gRPC event feed (server streaming, TLS)
  push-lookalikes.py grpc-client PORT SECONDS               a subscriber to it

Real protocols from Debian's python3-websockets and python3-grpcio; loopback only; every loop is
bounded by SECONDS.
"""
import asyncio
import json
import random
import ssl
import sys
import time


def words(n):
    return " ".join(random.choice(["ok", "lunch?", "deploy", "looks good", "ship it", "the build", "is red", "again",
                                   "thanks", "on my way", "meeting", "at three", "coffee", "PR #4211", "merged"]) for _ in range(n))


async def chat_server(port, cert, key, seconds):
    import websockets
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    end = time.time() + seconds

    async def member(ws):
        async def others():
            # Other members talk at their own pace, in messages of every length.
            n = 0
            while time.time() < end:
                await asyncio.sleep(random.uniform(0.4, 5.0))
                n += 1
                await ws.send(json.dumps({"type": "message", "channel": "general", "user": random.choice(["ana", "bo", "chen", "dev"]),
                                          "text": words(random.randint(1, 60)), "ts": time.time(), "seq": n}))
        task = asyncio.create_task(others())
        try:
            async for raw in ws:
                msg = json.loads(raw)
                await ws.send(json.dumps({"type": "ack", "id": msg.get("id"), "ts": time.time()}))
        except Exception:
            pass
        task.cancel()

    async with websockets.serve(member, "127.0.0.1", port, ssl=ctx):
        await asyncio.sleep(seconds)


async def chat_client(port, seconds):
    import websockets
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    end = time.time() + seconds
    for _ in range(50):
        try:
            async with websockets.connect(f"wss://127.0.0.1:{port}/chat", ssl=ctx, ping_interval=20) as ws:
                async def reader():
                    async for _ in ws:
                        pass
                task = asyncio.create_task(reader())
                n = 0
                while time.time() < end:
                    await asyncio.sleep(random.uniform(0.8, 4.0))
                    n += 1
                    await ws.send(json.dumps({"id": n, "type": "message", "channel": "general", "text": words(random.randint(1, 40))}))
                task.cancel()
                return
        except OSError:
            await asyncio.sleep(0.2)


def grpc_server(port, cert, key, seconds):
    import grpc
    from concurrent import futures
    end = time.time() + seconds

    def subscribe(request, context):
        # An event feed: a status event every 2 s while the subscriber listens.
        n = 0
        while time.time() < end and context.is_active():
            time.sleep(2.0)
            n += 1
            yield json.dumps({"event": "status", "seq": n, "service": "checkout", "healthy": True, "latency_ms": random.randint(5, 40),
                              "ts": time.time()}).encode()

    handler = grpc.method_handlers_generic_handler("events.Feed", {
        "Subscribe": grpc.unary_stream_rpc_method_handler(subscribe, request_deserializer=lambda b: b, response_serializer=lambda b: b)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    with open(cert, "rb") as c, open(key, "rb") as k:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    server.add_secure_port(f"127.0.0.1:{port}", creds)
    server.start()
    time.sleep(seconds)
    server.stop(0)


def grpc_client(port, cert, seconds):
    import grpc
    with open(cert, "rb") as c:
        creds = grpc.ssl_channel_credentials(root_certificates=c.read())
    end = time.time() + seconds
    while time.time() < end:
        try:
            with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "test")]) as ch:
                call = ch.unary_stream("/events.Feed/Subscribe", request_serializer=lambda b: b, response_deserializer=lambda b: b)
                for _ in call(b"{}", timeout=max(1, end - time.time())):
                    pass
        except Exception:
            time.sleep(0.3)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "ws-chat-server":
        asyncio.run(chat_server(port, sys.argv[3], sys.argv[4], float(sys.argv[5])))
    elif mode == "ws-chat-client":
        asyncio.run(chat_client(port, float(sys.argv[3])))
    elif mode == "grpc-server":
        grpc_server(port, sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif mode == "grpc-client":
        grpc_client(port, sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()

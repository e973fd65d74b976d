"""The ceiling of a gRPC unary call in Python on this machine: a grpc.aio server whose one
method answers an empty reply at once, no interceptor, no work. `bench/ingest.py` starts it in
a process of its own and calls it as it calls ingest's `Track`, so the two figures sit side by
side.

    .venv/bin/python -m bench.bare_grpc PORT
"""

import asyncio
import sys

import grpc

METHOD = "/bench.Bare/Call"


async def serve(port: int) -> None:
    async def call(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        return b""

    handler = grpc.method_handlers_generic_handler(
        "bench.Bare",
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=bytes, response_serializer=bytes
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))

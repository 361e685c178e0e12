"""A local stand-in for tensorflow_model_server: TF Serving's REST and gRPC APIs, in Python.

Modules:
  layout      version directories on disk, `--model-dir` detection (no TensorFlow import)
  servable    one loaded version: SignatureDefs and callable signatures
  repository  which versions are loaded (latest-N policy, polling, states)
  service     the request logic REST and gRPC share (resolve, validate, run, status, metadata)
  rest_json   TF Serving's JSON <-> tensor mapping
  rest        the REST API (Starlette app)
  grpc_service  the gRPC PredictionService and ModelService
  server      StandinServer and serve_in_process(): start/stop everything in-process

`StandinServer` and `serve_in_process` are imported lazily: importing this package does not
import TensorFlow.
"""

__all__ = ["StandinServer", "StartupError", "serve_in_process"]


def __getattr__(name):
    if name in __all__:
        from serving.standin import server
        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Constants more than one layer needs: one home each (no imports, so any layer may use it).

The model's serving contract (signature names, k and session limits) is shared by the export in
`trainer/`, the client and the stand-in in `serving/`, and the explorer in `ui/`; the request
limits by `towergraph serve` and the stand-in.
"""

# The served model's default name: TF Serving's --model_name and the URL path /v1/models/<name>.
DEFAULT_MODEL_NAME = "towergraph"

# Largest k (neighbours, recommendations, search results) a serving signature returns.
DEFAULT_MAX_K = 100
# Longest browsing session the `recommend` signature accepts.
MAX_SESSION_ITEMS = 50

# The exported SavedModel's signatures (DESIGN.md, "The model's serving contract").
SIGNATURE_EMBEDDINGS = "serving_default"
SIGNATURE_SIMILAR_ITEMS = "similar_items"
SIGNATURE_RECOMMEND = "recommend"
SIGNATURE_USER_EMBEDDINGS = "user_embeddings"
SIGNATURE_SEARCH = "search"
SIGNATURE_ITEM_INFO = "item_info"
SIGNATURE_CATALOG_ITEMS = "catalog_items"
SIGNATURE_EMBED_CONTENT = "embed_content"   # a (new) item's vector from its content alone
SIGNATURES = (SIGNATURE_EMBEDDINGS, SIGNATURE_SIMILAR_ITEMS, SIGNATURE_RECOMMEND,
              SIGNATURE_USER_EMBEDDINGS, SIGNATURE_SEARCH, SIGNATURE_ITEM_INFO,
              SIGNATURE_CATALOG_ITEMS, SIGNATURE_EMBED_CONTENT)

# Request limits of the local stand-in server (`towergraph serve`): rows per request
# (dimension 0 of every input) and bytes per REST body or gRPC message.
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024

# Limits of the multi-hop graph builder (serving/graph.py), shown by `towergraph graph` and the
# explorer's sliders.
MAX_GRAPH_DEPTH = 4          # hops from the seeds
MAX_GRAPH_FANOUT = 20        # neighbours asked for per node
DEFAULT_GRAPH_MAX_NODES = 2000
MAX_GRAPH_NODES = 10_000     # the largest max_nodes a caller may ask for

# What a serving client talks over, as the client reports it and the explorer shows it.
PROTOCOL_REST = "REST"
PROTOCOL_GRPC = "gRPC"
PROTOCOL_SAVED_MODEL = "SavedModel"   # the model loaded in-process, no server

# Longest title search query the client sends (the `search` signature builds a pattern from it).
MAX_SEARCH_QUERY_CHARS = 500
# embed_content reads at most this many characters of each title, genres and authors string:
# bounded work whatever a client sends (a real title is far shorter).
MAX_CONTENT_CHARS = 1000

"""What the explorer shows, as plain text and rows (no Streamlit): the graph's statistics in
words, the items a few hops away with the path there, the direct neighbours, recommendations.

Titles are data, never markup: rows go to dataframes (shown as text), and escape_markdown()
makes a title safe inside anything Streamlit renders as Markdown (button labels, messages).
"""

import string
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from serving.client import Item, Recommendations
from serving.graph import SimilarityGraph
from serving.graph_export import COLD_TEXT

ARROW = " → "
_HOP_WORDS = {1: "one hop away", 2: "two hops away", 3: "three hops away",
              4: "four hops away"}
_MARKDOWN_SPECIAL = set(string.punctuation)


def escape_markdown(text: str) -> str:
    """Backslash-escapes every ASCII punctuation character (CommonMark lets any of them be
    escaped), so `*`, `_`, `[..](..)`, `<img ...>`, `$..$` and `:emoji:` show literally."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    return "".join("\\" + char if char in _MARKDOWN_SPECIAL else char for char in text)


def shorten(text: str, limit: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def list_field(value: str) -> str:
    """Genres / authors travel `|`-joined."""
    return ", ".join(part for part in str(value).split("|") if part)


def item_label(item_id: str, title: str) -> str:
    """How an item is named in a list of choices: its title and, to tell twins apart, its id."""
    return f"{title} (#{item_id})" if title else f"#{item_id}"


def cold_note(cold: bool) -> str:
    """How a cold item is labelled in cards and lists ('' for a warm one)."""
    return COLD_TEXT if cold else ""


def _with_cold_column(rows: List[Dict[str, object]], colds: Sequence[bool]) -> List[Dict]:
    """Adds a "new" column (COLD_TEXT for a cold item, '' otherwise) just before "id", only
    when some row is a cold item: a model without cold items keeps its tables as they were."""
    if not any(colds):
        return rows
    marked = []
    for row, cold in zip(rows, colds):
        item_id = row.pop("id")
        marked.append({**row, "new": cold_note(cold), "id": item_id})
    return marked


def plural(count: int, word: str, words: Optional[str] = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def percent(share: float) -> str:
    return f"{round(100 * share)}%"


# -- the graph ------------------------------------------------------------------------------------

def path_titles(graph, path: Sequence[str]) -> str:
    """A node's path from the centre, as titles joined by arrows."""
    return ARROW.join(graph.nodes[node].get("title") or node for node in path)


def hop_counts_sentence(nodes_per_hop: Sequence[int]) -> str:
    parts = []
    for hop, count in enumerate(nodes_per_hop):
        if hop == 0:
            parts.append("the centre" if count == 1 else f"{count} centres")
        else:
            parts.append(f"{count} {_HOP_WORDS.get(hop, f'{hop} hops away')}")
    return "By distance: " + ", ".join(parts) + "."


def describe_stats(stats: Mapping[str, object]) -> List[str]:
    """graph_stats() as sentences a reader understands."""
    nodes, edges = int(stats["nodes"]), int(stats["edges"])
    sentences = [f"{plural(nodes, 'item')} joined by {plural(edges, 'similarity link')}."]
    per_hop = list(stats.get("nodes_per_hop") or [])
    if per_hop:
        sentences.append(hop_counts_sentence(per_hop))
    cold = int(stats.get("cold") or 0)
    if cold:
        sentences.append(f"{plural(cold, 'item is', 'items are')} new: placed by content alone "
                         f"(title, genres, authors), with too few ratings to learn from.")
    if edges == 0:
        sentences.append("The model found no neighbours for this item.")
        return sentences
    sentences.append(f"Its shape is {stats['shape']}.")
    if len(per_hop) > 1:
        outer = len(per_hop) - 1
        single = float(stats["outer_single_link"])
        sentences.append(
            f"At the edge ({_HOP_WORDS.get(outer, f'{outer} hops away')}), "
            f"{percent(single)} of the items hang on a single link; the rest are reached "
            f"from several items.")
    sentences.append(f"Two neighbours of an item are linked to each other "
                     f"{percent(float(stats['average_clustering']))} of the time "
                     f"(average clustering).")
    sentences.append(f"Linked items have an average similarity of {float(stats['mean_score']):.2f} "
                     f"(cosine: 1 is the same direction, 0 unrelated).")
    if stats.get("truncated"):
        sentences.append(f"The graph was cut short: {stats['truncated']}.")
    return sentences


def shape_word(stats: Mapping[str, object]) -> str:
    """The first words of graph_stats()' shape ("spread out", "tight", "in between")."""
    return str(stats["shape"]).split(":")[0]


def neighbour_rows(result: SimilarityGraph, centre: str) -> List[Dict[str, object]]:
    """The centre's direct neighbours, most similar first."""
    graph = result.graph
    rows = [{"title": graph.nodes[node]["title"],
             "similarity": round(float(graph.edges[centre, node]["score"]), 4),
             "genres": list_field(graph.nodes[node].get("genres", "")),
             "authors": list_field(graph.nodes[node].get("authors", "")),
             "id": node}
            for node in graph.neighbors(centre)] if centre in graph else []
    rows = sorted(rows, key=lambda row: (-row["similarity"], row["title"]))
    return _with_cold_column(rows, [bool(graph.nodes[row["id"]].get("cold")) for row in rows])


def few_hops_rows(result: SimilarityGraph, min_hop: int = 2) -> List[Dict[str, object]]:
    """Items at least min_hop hops away, with the path of titles that first reached them."""
    graph = result.graph
    rows = [{"hop": data["hop"], "title": data["title"],
             "path": path_titles(graph, data["path"]),
             "genres": list_field(data.get("genres", "")), "id": node}
            for node, data in graph.nodes(data=True) if data["hop"] >= min_hop]
    rows = sorted(rows, key=lambda row: (row["hop"], row["path"]))
    return _with_cold_column(rows, [bool(graph.nodes[row["id"]].get("cold")) for row in rows])


def recentre_choices(result: SimilarityGraph, centre: str) -> List[str]:
    """Every node but the centre, nearest hops first, then by title."""
    graph = result.graph
    return sorted((node for node in graph if node != centre),
                  key=lambda node: (graph.nodes[node]["hop"], graph.nodes[node]["title"], node))


def node_titles(result: SimilarityGraph) -> Dict[str, str]:
    return {node: data["title"] for node, data in result.graph.nodes(data=True)}


# -- recommendations ------------------------------------------------------------------------------

STRATEGY_WORDS = {
    "user": "from the user's history",
    "session": "from the browsing session alone (a cold start: no known user)",
    "user+session": "from the user's history, steered by the browsing session",
    "popular": "the most popular items: neither a known user nor a known session item was given",
}


def describe_recommendations(recs: Recommendations, user_id: str = "",
                             session: Sequence[str] = ()) -> List[str]:
    lines = [f"Strategy: {recs.strategy} — "
             f"{STRATEGY_WORDS.get(recs.strategy, 'as the model chose')}."]
    if user_id and not recs.user_found:
        lines.append(f"User {user_id!r} is not known to the model, so their history is not "
                     f"used.")
    if recs.unknown_session_items:
        lines.append("Not known to the model, left out of the session: "
                     + ", ".join(recs.unknown_session_items) + ".")
    if not recs.items:
        lines.append("The model returned no items.")
    return lines


def item_rows(items: Iterable[Item], score_name: str = "score") -> List[Dict[str, object]]:
    items = list(items)
    rows = [{"rank": rank, "title": item.title, score_name: round(float(item.score), 4),
             "genres": list_field(item.genres), "authors": list_field(item.authors),
             "id": item.item_id}
            for rank, item in enumerate(items, 1)]
    return _with_cold_column(rows, [bool(getattr(item, "cold", False)) for item in items])

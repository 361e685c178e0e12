"""Names shared by the prepared data, Transform, the model and its serving signatures."""

# Columns of the prepared interactions CSV (see pipeline/data) and features after Transform.
USER_ID = "user_id"
ITEM_ID = "item_id"
RATING = "rating"
TITLE = "title"
GENRES = "genres"
AUTHORS = "authors"

# Optional multi-valued content columns, `|`-separated in the prepared data.
LIST_FEATURES = (GENRES, AUTHORS)
LIST_SEPARATOR = "|"

# Transform vocabulary names (files under transform_fn/assets). Items are ordered by how often
# they were rated, so the first N lines are the N most-rated items.
VOCABULARIES = {
    USER_ID: "user_id",
    ITEM_ID: "item_id",
    TITLE: "title_token",
    GENRES: "genre",
    AUTHORS: "author",
}

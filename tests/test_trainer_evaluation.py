"""trainer/evaluation.py, through what the gate (pipeline/gate.py) calls: evaluate_models on the
tiny world's exported model (users each read one genre, so the right answers are known), alone
and with another model in the same pass, and the gate's rules: gate_shortfalls (a strict win
over popularity at every k; production within the tolerance) and the small-catalogue cap,
judged_ks."""

import numpy as np
import pytest

import tiny_world
from trainer.evaluation import (POPULARITY, evaluate_models, gate_shortfalls, judged_ks,
                                load_exported, unique_judged)

TOLERANCE = 0.005  # the gate's default


@pytest.fixture(scope="module")
def model_dir(tiny_model_base):
    return str(tiny_model_base / "1")


@pytest.fixture(scope="module")
def train(tiny_interactions):
    return tiny_interactions["user_id"].astype(str), tiny_interactions["item_id"].astype(str)


@pytest.fixture(scope="module")
def exported(model_dir):
    return load_exported(model_dir)


def _evaluate(exported, train, held_out, ks):
    """evaluate_models for the one model, as the gate calls it on a first run."""
    return evaluate_models({"model": exported}, train, held_out, ks=ks)


def _shortfalls(results, ks, tolerance=TOLERANCE):
    """The gate's verdict on results' model with no production model (empty: blessed)."""
    recall = results["recall"]
    return gate_shortfalls(recall["model"], recall[POPULARITY], None, ks, tolerance)


def _unread(train, user, same_genre):
    """Item ids `user` did not read, of their genre (or of the other one)."""
    read = set(train[1][train[0] == user])
    genre = int(user[1:]) % 2 if same_genre else 1 - int(user[1:]) % 2
    return [str(item) for item in range(tiny_world.N_ITEMS)
            if item % 2 == genre and str(item) not in read]


def _held_out(train, same_genre, users=None):
    users = users or [f"u{u}" for u in range(tiny_world.N_USERS)]
    pairs = [(user, _unread(train, user, same_genre)[0]) for user in users]
    return tuple(np.array(column) for column in zip(*pairs))


def test_model_finds_unread_items_of_the_users_genre(exported, train):
    # Each user has exactly 10 unread items of their genre: a model that learned the genres
    # ranks them first, so recall@10 is (nearly) 1; popularity mixes the genres.
    results = _evaluate(exported, train, _held_out(train, same_genre=True), ks=(10, 30))
    model, popularity = results["recall"]["model"], results["recall"][POPULARITY]
    assert model["recall@10"] > 0.9
    assert popularity["recall@10"] < 0.8
    # 30 unread items in all: at k=30 everything unread is ranked, by either.
    assert model["recall@30"] == popularity["recall@30"] == 1.0
    assert results["held_out_interactions"] == results["users"] == tiny_world.N_USERS
    assert results["users_unknown"] == {"model": 0}
    assert results["catalog_items"] == {"model": tiny_world.N_ITEMS}
    assert _shortfalls(results, (10,)) == []
    # A tie is not a win, whatever the tolerance (it is for production, not popularity).
    for tolerance in (TOLERANCE, 0.5):
        assert _shortfalls(results, (10, 30), tolerance) == [
            "recall@30 1.000 does not beat popularity 1.000"]


def most_popular_for_other_genre(train):
    """Held-out pairs that popularity gets right at k=1 and the model should miss: item 22
    (a Fantasy item) is the single most-read item, held out for every Science Fiction reader."""
    items, counts = np.unique(train[1], return_counts=True)
    assert items[counts.argmax()] == "22" and (counts == counts.max()).sum() == 1
    users = [f"u{u}" for u in range(1, tiny_world.N_USERS, 2)]
    return np.array(users), np.array(["22"] * len(users))


def test_model_misses_items_of_the_other_genre(exported, train):
    results = _evaluate(exported, train, most_popular_for_other_genre(train), ks=(1, 10))
    assert results["recall"][POPULARITY] == {"recall@1": 1.0, "recall@10": 1.0}
    assert results["recall"]["model"]["recall@10"] < 0.1
    assert [reason.split()[0] for reason in _shortfalls(results, (1,))] == ["recall@1"]
    assert [reason.split()[0] for reason in _shortfalls(results, (10,))] == ["recall@10"]


def _read_by_first_users(train):
    users = [f"u{u}" for u in range(5)]
    return np.array(users), np.array([train[1][train[0] == user][0] for user in users])


def test_training_items_are_never_counted_as_found(exported, train):
    # Each user read 10 of the 40 items: k=30 ranks every item they did not read.
    results = _evaluate(exported, train, _read_by_first_users(train), ks=(10, 30))
    assert results["recall"]["model"] == {"recall@10": 0.0, "recall@30": 0.0}
    assert results["recall"][POPULARITY] == {"recall@10": 0.0, "recall@30": 0.0}


def test_training_items_are_not_found_even_when_k_exceeds_the_unread_items(exported, train):
    results = _evaluate(exported, train, _read_by_first_users(train), ks=(40,))
    assert results["recall"]["model"] == {"recall@40": 0.0}
    assert results["recall"][POPULARITY] == {"recall@40": 0.0}


def test_users_unknown_to_the_model_fall_back_to_popularity(exported, train):
    stranger = (np.array(["stranger"] * 3), np.array(["0", "1", "2"]))
    held_out = (np.array(["stranger"]), np.array(["3"]))
    with_stranger = (np.concatenate([train[0], stranger[0]]),
                     np.concatenate([train[1], stranger[1]]))
    results = _evaluate(exported, with_stranger, held_out, ks=(1, 5, 10))
    assert results["users_unknown"]["model"] == results["users"] == 1
    assert results["recall"]["model"] == results["recall"][POPULARITY]
    assert len(_shortfalls(results, (1, 5, 10))) == 3  # ties at every k: not blessed


def test_metrics_have_one_recall_per_k(exported, train):
    results = _evaluate(exported, train, _held_out(train, True, ["u0", "u1"]), ks=(1, 3, 7))
    assert sorted(results["recall"]) == ["model", POPULARITY]
    for recall in results["recall"].values():
        assert sorted(recall) == ["recall@1", "recall@3", "recall@7"]
        values = [recall[f"recall@{k}"] for k in (1, 3, 7)]
        assert values == sorted(values) and all(0.0 <= v <= 1.0 for v in values)
    assert results["held_out_interactions"] == 2


def _recall(values):
    return {f"recall@{k}": v for k, v in values.items()}


@pytest.mark.parametrize("model, popularity, ks, failed", [
    ({10: 0.3, 100: 0.6}, {10: 0.2, 100: 0.5}, (10, 100), []),
    ({10: 0.3, 100: 0.4}, {10: 0.2, 100: 0.5}, (10, 100), [100]),     # loses at 100
    ({10: 0.3, 100: 0.4}, {10: 0.2, 100: 0.5}, (10,), []),            # only k=10 judged
    ({10: 0.2, 100: 0.6}, {10: 0.2, 100: 0.5}, (10, 100), [10]),      # ties at 10
    ({10: 0.1, 100: 0.4}, {10: 0.2, 100: 0.5}, (10, 100), [10, 100]),
])
@pytest.mark.parametrize("tolerance", [0.0, TOLERANCE, 0.5])
def test_gate_shortfalls_need_a_strict_win_over_popularity_at_every_k(model, popularity, ks,
                                                                      failed, tolerance):
    # The tolerance is for production only: popularity must be beaten outright.
    reasons = gate_shortfalls(_recall(model), _recall(popularity), None, ks, tolerance)
    assert reasons == [f"recall@{k} {model[k]:.3f} does not beat popularity "
                       f"{popularity[k]:.3f}" for k in failed]


def test_gate_shortfalls_on_a_k_that_was_not_measured_raise():
    with pytest.raises(KeyError):
        gate_shortfalls(_recall({10: 0.3}), _recall({10: 0.2}), None, (10, 100), TOLERANCE)


def test_models_scored_together_get_the_numbers_each_gets_alone(exported, model_dir, train):
    held_out = _held_out(train, same_genre=True)
    alone = _evaluate(exported, train, held_out, ks=(1, 10))["recall"]
    # One of them has a catalogue that lacks half the items (the other genre's): it cannot
    # rank what it does not hold, and the other model's numbers must not change because of it.
    small = load_exported(model_dir)
    keep = np.array([int(item) % 2 == 0 for item in small.catalog])
    small.catalog, small.item_vectors, small.score_offsets = (
        small.catalog[keep], small.item_vectors[keep], small.score_offsets[keep])
    together = evaluate_models({"candidate": load_exported(model_dir), "production": small},
                               train, held_out, ks=(1, 10))
    assert together["recall"]["candidate"] == alone["model"]
    assert together["recall"][POPULARITY] == alone[POPULARITY]
    # Science Fiction readers' held-out items are not in the small catalogue: half are missed.
    assert together["recall"]["production"]["recall@10"] <= 0.5 + 1e-6
    assert together["catalog_items"] == {"candidate": tiny_world.N_ITEMS,
                                         "production": tiny_world.N_ITEMS // 2}
    assert together["users_unknown"] == {"candidate": 0, "production": 0}
    assert together["held_out_interactions"] == together["users"] == tiny_world.N_USERS


def test_popularity_is_not_a_model_name(model_dir, train):
    with pytest.raises(ValueError, match="popularity"):
        evaluate_models({"popularity": load_exported(model_dir)}, train,
                        _held_out(train, True, ["u0"]), ks=(10,))


@pytest.mark.parametrize("ks, catalog_items, judged", [
    ((10, 100), 1682, [10, 100]),           # MovieLens 100K: nothing capped
    ((10, 100), 150, [10, 75]),
    ((10, 100), 200, [10, 100]),            # exactly half: kept
    ((10, 30, 100), 40, [10, 20, 20]),
    ((10,), 12, [6]),
    ((10,), 1, [1]),                        # never below 1
])
def test_a_k_is_judged_at_most_at_half_the_catalogue(ks, catalog_items, judged):
    entries = judged_ks(ks, catalog_items)
    assert [entry["configured"] for entry in entries] == list(ks)
    assert [entry["judged"] for entry in entries] == judged
    for entry in entries:
        assert ("why" in entry) == (entry["judged"] < entry["configured"])
        if "why" in entry:
            assert f"{catalog_items} items" in entry["why"]
    assert unique_judged(entries) == list(dict.fromkeys(judged))


@pytest.mark.parametrize("model, production, tolerance, blessed", [
    ({10: 0.181, 100: 0.5}, {10: 0.176, 100: 0.49}, 0.005, True),     # better at both
    ({10: 0.181, 100: 0.5}, {10: 0.186, 100: 0.5}, 0.005, True),      # exactly the tolerance
    ({10: 0.181, 100: 0.5}, {10: 0.187, 100: 0.5}, 0.005, False),     # past it at 10
    ({10: 0.181, 100: 0.5}, {10: 0.181, 100: 0.52}, 0.005, False),    # past it at 100
    ({10: 0.181, 100: 0.5}, {10: 0.181, 100: 0.52}, 0.03, True),
    ({10: 0.181, 100: 0.5}, {10: 0.181, 100: 0.5}, 0.0, True),        # a tie with production
    ({10: 0.181, 100: 0.5}, None, 0.005, True),                       # first run
])
def test_gate_shortfalls_compare_with_production_within_the_tolerance(model, production,
                                                                      tolerance, blessed):
    popularity = _recall({10: 0.093, 100: 0.3})
    reasons = gate_shortfalls(_recall(model), popularity,
                              production and _recall(production), (10, 100), tolerance)
    assert (reasons == []) is blessed
    assert all("below production" in reason for reason in reasons)


def test_gate_shortfalls_name_every_failed_k():
    reasons = gate_shortfalls(_recall({10: 0.09, 100: 0.2}), _recall({10: 0.093, 100: 0.3}),
                              _recall({10: 0.2, 100: 0.2}), (10, 100), 0.005)
    assert reasons == ["recall@10 0.090 does not beat popularity 0.093",
                       "recall@10 0.090 is more than 0.005 below production 0.200",
                       "recall@100 0.200 does not beat popularity 0.300"]

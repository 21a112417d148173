"""The 2-way 1-shot digits task (docs/theory.md §6)."""
import numpy as np
import pytest

from smtheory import InputError
from smtheory.tasks.digits import DigitsTask, _load, sinusoidal_code


@pytest.fixture(scope="module")
def task():
    return DigitsTask()


@pytest.fixture(scope="module")
def target():
    return _load()[1]


def test_shapes_and_balance(task):
    x, y = task.sample(101, "train", seed=3)
    assert x.shape == (101, task.input_dim, task.n_tokens) == (101, 32, 12)
    assert set(np.unique(y)) == {-1.0, 1.0}
    assert abs(int((y > 0).sum()) - int((y < 0).sum())) == 1
    assert np.all(np.isfinite(x))


def test_deterministic_by_seed(task):
    a, ya = task.sample(20, "val", seed=5)
    b, yb = task.sample(20, "val", seed=5)
    c, _ = task.sample(20, "val", seed=6)
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("split", ["train", "val", "test", "ood"])
def test_target_is_label_of_query_class(task, target, split):
    x, y, m = task.sample(400, split, seed=1, return_meta=True)
    sup_cls = target[m["support"]]
    assert np.all(sup_cls[:, 0] != sup_cls[:, 1])
    assert np.all(m["query"][:, None] != m["support"])
    assert np.all(target[m["query"]] == m["query_class"])
    # the support whose label is y has the query's class, the other one does not
    idx = np.where(m["support_labels"][:, 0] == y, 0, 1)
    assert np.all(sup_cls[np.arange(400), idx] == m["query_class"])
    assert np.all(sup_cls[np.arange(400), 1 - idx] != m["query_class"])
    # both support orders occur
    assert 0 < np.mean(m["support_labels"][:, 0] > 0) < 1
    allowed = task.heldout_classes if split == "ood" else task.train_classes
    assert set(np.unique(sup_cls)) <= set(allowed)


def test_pools_are_disjoint_and_complete(task, target):
    pools = task.pools()
    for c in task.train_classes:
        parts = [set(pools[s][c].tolist()) for s in ("train", "val", "test")]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert set().union(*parts) == set(np.flatnonzero(target == c).tolist())
    assert set(pools["ood"]) == set(task.heldout_classes)


def test_token_layout(task):
    images, _ = _load()
    x, y, m = task.sample(5, "test", seed=0, return_meta=True)
    mean, std = images.mean(), images.std()
    img = (images[m["query"][0]] - mean) / std
    p, k = task.patch, 8 // task.patch
    # token 2*k*k + 1 is the query's second patch (raster order: row 0, column 1)
    tok = x[0, :p * p, 2 * k * k + 1]
    assert np.allclose(tok, img[:p, p:2 * p].ravel())
    # the code part: sinusoidal position code + role embedding; the query's tokens share one embedding
    code = sinusoidal_code(task.n_tokens, task.code_dim)
    emb = x[:, p * p:, :] - code[None]
    q = emb[:, :, 2 * k * k:]
    assert np.allclose(q, q[:1, :, :1])
    # the two supports carry different label embeddings, and the embedding follows the label
    s1, s2 = emb[:, :, 0], emb[:, :, k * k]
    assert not np.allclose(s1, s2)
    lab = m["support_labels"]
    plus = np.where(lab[:, :1] > 0, s1, s2)
    assert np.allclose(plus, plus[:1])


def test_sinusoidal_code_unit_variance():
    c = sinusoidal_code(500, 16)
    assert c.shape == (16, 500)
    assert abs(np.mean(c ** 2) - 1.0) < 0.05


@pytest.mark.parametrize("kwargs, word", [
    (dict(train_classes=(0, 1, 2), heldout_classes=(2, 3)), "disjoint"),
    (dict(patch=3), "patch"),
    (dict(code_dim=7), "code_dim"),
    (dict(train_classes=(0,)), "train_classes"),
    (dict(fractions=(0.5, 0.5, 0.5)), "fractions"),
    (dict(heldout_classes=(10, 11)), "heldout_classes"),
])
def test_bad_configuration(kwargs, word):
    with pytest.raises(InputError, match=word):
        DigitsTask(**kwargs)


def test_bad_sample_arguments(task):
    with pytest.raises(InputError, match="split"):
        task.sample(4, "holdout")
    with pytest.raises(InputError, match="n must be a positive integer"):
        task.sample(0)

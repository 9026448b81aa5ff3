"""A seeded synthetic data set with known latent structure: the default that runs anywhere.

Items belong to one of ``n_categories`` categories and carry a latent vector near their
category's centre plus a "quality" bias; users mix a few categories. The true affinity is
``u·v + quality + age_bucket × item_recency``: the last term is visible only through side
features, so a feature ranker has something to learn that matrix factorisation alone misses.
Interactions are drawn from a softmax over true affinities; per user, a random 20% is test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from training.data import InteractionData, split_last_fraction


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 2000
    n_items: int = 1000
    n_categories: int = 8
    latent_dim: int = 16
    min_interactions: int = 10
    max_interactions: int = 40
    temperature: float = 0.5
    test_fraction: float = 0.2
    seed: int = 0


def generate(config: SyntheticConfig | None = None) -> InteractionData:
    c = config or SyntheticConfig()
    rng = np.random.default_rng(c.seed)
    centres = rng.normal(size=(c.n_categories, c.latent_dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    item_cat = rng.integers(0, c.n_categories, size=c.n_items)
    item_lat = centres[item_cat] + 0.5 * rng.normal(size=(c.n_items, c.latent_dim)) / np.sqrt(c.latent_dim)
    quality = rng.normal(0.0, 0.3, size=c.n_items)
    recency = rng.uniform(0.0, 1.0, size=c.n_items)  # 0 = old catalogue, 1 = new release

    mix = rng.dirichlet(np.full(c.n_categories, 0.3), size=c.n_users)
    user_lat = mix @ centres + 0.3 * rng.normal(size=(c.n_users, c.latent_dim)) / np.sqrt(c.latent_dim)
    user_lat *= 2.5
    age_bucket = rng.integers(0, 4, size=c.n_users)  # 0 youngest … 3 oldest
    youth = (1.5 - age_bucket) / 1.5  # +1 young, -1 old
    activity = rng.integers(c.min_interactions, c.max_interactions + 1, size=c.n_users)

    users, items, order = [], [], []
    for u in range(c.n_users):
        aff = item_lat @ user_lat[u] + quality + 1.0 * youth[u] * (recency - 0.5)
        p = np.exp((aff - aff.max()) / c.temperature)
        p /= p.sum()
        chosen = rng.choice(c.n_items, size=activity[u], replace=False, p=p)
        users.append(np.full(len(chosen), u))
        items.append(chosen)
        order.append(rng.permutation(len(chosen)))
    users_a = np.concatenate(users).astype(np.int64)
    items_a = np.concatenate(items).astype(np.int64)
    keep, held = split_last_fraction(users_a, items_a, np.concatenate(order), c.test_fraction)

    user_features = np.concatenate(
        [
            np.eye(4, dtype=np.float32)[age_bucket],
            (activity[:, None] / c.max_interactions).astype(np.float32),
        ],
        axis=1,
    )
    item_tags = np.eye(c.n_categories, dtype=np.float32)[item_cat]
    item_features = np.concatenate([item_tags, recency[:, None].astype(np.float32)], axis=1)
    cat_names = [f"cat{j}" for j in range(c.n_categories)]
    return InteractionData(
        source={"dataset": "synthetic", "synthetic": asdict(c)},  # what `recserve retrain` regenerates
        name="synthetic",
        user_ids=[f"u{u}" for u in range(c.n_users)],
        item_ids=[f"i{i}" for i in range(c.n_items)],
        train_users=users_a[keep],
        train_items=items_a[keep],
        test_users=users_a[held],
        test_items=items_a[held],
        user_features=user_features,
        item_features=item_features,
        item_tags=item_tags,
        user_feature_names=["age_0", "age_1", "age_2", "age_3", "activity"],
        item_feature_names=[*cat_names, "recency"],
        tag_names=cat_names,
        item_attributes={"category": [[cat_names[j]] for j in item_cat]},
    )


@dataclass(frozen=True)
class PowerLawSpec:
    """A large implicit-feedback log with the long tails real logs have (for scale benchmarks).

    Item popularity follows Zipf (``item_exponent`` 0.9: the top 1% of a 1M catalogue gets about a
    third of the interactions); user activity is Pareto(``user_alpha``)-weighted, so a few users
    have thousands of interactions and most have a handful. Users and items belong to one of
    ``communities`` groups and ``affinity`` of a user's interactions stay in their group, which
    gives MF a structure to learn. Duplicates are left in: the reader collapses them, as in a real log.
    """

    n_users: int = 200_000
    n_items: int = 1_000_000
    n_interactions: int = 10_000_000
    item_exponent: float = 0.9
    user_alpha: float = 1.2
    communities: int = 64
    affinity: float = 0.6
    seed: int = 0


def power_law_log(spec: PowerLawSpec, progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(users, items, epoch_seconds)`` int64 arrays of ``spec.n_interactions`` rows (vectorised)."""
    from tqdm import tqdm

    rng = np.random.default_rng(spec.seed)
    weights = rng.pareto(spec.user_alpha, spec.n_users) + 1.0
    counts = rng.multinomial(spec.n_interactions, weights / weights.sum())
    users = np.repeat(np.arange(spec.n_users, dtype=np.int64), counts)
    rng.shuffle(users)  # file order is not user order
    user_group = rng.integers(0, spec.communities, spec.n_users)
    # popularity rank -> item id: a random permutation, so popular items are spread over the id range
    rank_to_item = rng.permutation(spec.n_items).astype(np.int64)
    cdf = np.cumsum((np.arange(1, spec.n_items + 1, dtype=np.float64)) ** -spec.item_exponent)
    cdf /= cdf[-1]
    items = np.empty(spec.n_interactions, np.int64)
    step = 1 << 20
    for lo in tqdm(
        range(0, spec.n_interactions, step), desc="generating log", disable=not progress, leave=False
    ):
        hi = min(lo + step, spec.n_interactions)
        item = rank_to_item[np.minimum(np.searchsorted(cdf, rng.random(hi - lo)), spec.n_items - 1)]
        # in-group draws: move the item to the user's group (same popularity tier, id ≡ group mod C)
        own = rng.random(hi - lo) < spec.affinity
        grouped = item - item % spec.communities + user_group[users[lo:hi]]
        grouped = np.where(grouped < spec.n_items, grouped, item)
        items[lo:hi] = np.where(own, grouped, item)
    times = 1_600_000_000 + rng.integers(0, 365 * 86_400, spec.n_interactions)
    return users, items, times

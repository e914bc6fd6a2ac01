"""Two-tower retrieval: a user tower and an item tower trained with in-batch sampled softmax.

In-batch negatives are the positives of the other rows, so popular videos are over-sampled
as negatives; the logQ correction (Yi et al., RecSys 2019) subtracts the log of each item's
sampling probability from its logit, which removes that bias.

History ids are raw video ids. Both towers map them to embedding rows through a lookup
buffer, so ids that are negative (padding), beyond the table, or unknown (uploads newer than
the model) are masked instead of crashing the exported graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from vidrec.config import TrainConfig
from vidrec.errors import InputError
from vidrec.models.frames import float_matrix, int_matrix, int_vector, require_columns
from vidrec.models.params import TwoTowerParams
from vidrec.models.training import minibatches, prepare_torch
from vidrec.schema import N_CATEGORIES

RETRIEVAL_TABLE = "retrieval examples"
VIDEOS_TABLE = "videos"
_CREATOR_HASH = np.uint64(2654435761)  # Knuth's multiplicative hash: spreads sequential ids


@dataclass(frozen=True)
class TwoTowerSpec:
    """Shapes needed to rebuild the modules before loading a state dict."""

    user_dim: int
    n_items: int
    id_lookup_size: int
    embedding_dim: int
    hidden_dim: int
    n_creator_buckets: int
    temperature: float


def id_lookup(video_ids: np.ndarray) -> np.ndarray:
    """``lookup[video_id] = row`` for the vocabulary ``video_ids``; -1 for ids not in it."""
    if video_ids.size and video_ids.min() < 0:
        raise InputError(f"{VIDEOS_TABLE}: column 'video_id' has negative ids")
    if np.unique(video_ids).size != video_ids.size:
        raise InputError(f"{VIDEOS_TABLE}: column 'video_id' has duplicate ids")
    lookup = np.full(int(video_ids.max(initial=-1)) + 1, -1, dtype=np.int64)
    lookup[video_ids] = np.arange(video_ids.size, dtype=np.int64)
    return lookup


def lookup_rows(lookup: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Embedding rows for raw ids and a float mask that is 0 where the id has no row."""
    in_range = (ids >= 0) & (ids < lookup.shape[0])
    rows = lookup[ids.clamp(0, lookup.shape[0] - 1)]
    known = in_range & (rows >= 0)
    return rows.clamp(min=0), known.to(torch.float32)


@dataclass(frozen=True)
class ItemFeatures:
    """Content features of videos, row-aligned with the ``videos`` table they came from."""

    video_ids: np.ndarray  # int64 [M]
    categories: np.ndarray  # float32 [M, N_CATEGORIES] multi-hot
    log_duration: np.ndarray  # float32 [M], log1p(seconds)
    creator_bucket: np.ndarray  # int64 [M]


def item_features(videos: pl.DataFrame, n_creator_buckets: int) -> ItemFeatures:
    """Multi-hot categories, log duration and hashed creator for every row of ``videos``."""
    require_columns(videos, ("video_id", "creator_id", "category_ids", "duration_ms"), VIDEOS_TABLE)
    video_ids = int_vector(videos, "video_id", VIDEOS_TABLE)
    duration = int_vector(videos, "duration_ms", VIDEOS_TABLE)
    if (duration < 0).any():
        raise InputError(f"{VIDEOS_TABLE}: column 'duration_ms' has negative values")
    creators = int_vector(videos, "creator_id", VIDEOS_TABLE)
    pairs = (
        videos.select(pl.col("category_ids"))
        .with_row_index("row")
        .explode("category_ids")
        .drop_nulls("category_ids")
    )
    rows = pairs["row"].to_numpy().astype(np.int64)
    cats = pairs["category_ids"].to_numpy().astype(np.int64)
    if cats.size and (cats.min() < 0 or cats.max() >= N_CATEGORIES):
        raise InputError(
            f"{VIDEOS_TABLE}: column 'category_ids' has ids outside 0..{N_CATEGORIES - 1}"
        )
    categories = np.zeros((video_ids.size, N_CATEGORIES), dtype=np.float32)
    categories[rows, cats] = 1.0
    buckets = (creators.astype(np.uint64) * _CREATOR_HASH) % np.uint64(n_creator_buckets)
    return ItemFeatures(
        video_ids=video_ids,
        categories=categories,
        log_duration=np.log1p(duration / 1000.0).astype(np.float32),
        creator_bucket=buckets.astype(np.int64),
    )


class UserTower(nn.Module):
    """``forward(user_x float32[B, U], history int64[B, H]) -> float32[B, E]``, L2-normalised.

    Standalone (no reference to the item tower) so it exports to ONNX on its own.
    """

    user_mean: torch.Tensor
    user_std: torch.Tensor
    id_lookup: torch.Tensor

    def __init__(self, spec: TwoTowerSpec) -> None:
        super().__init__()
        self.register_buffer("user_mean", torch.zeros(spec.user_dim))
        self.register_buffer("user_std", torch.ones(spec.user_dim))
        self.register_buffer("id_lookup", torch.full((spec.id_lookup_size,), -1, dtype=torch.long))
        self.history_embedding = nn.Embedding(spec.n_items, spec.embedding_dim)
        nn.init.normal_(self.history_embedding.weight, std=0.05)
        self.mlp = nn.Sequential(
            nn.Linear(spec.user_dim + spec.embedding_dim, spec.hidden_dim),
            nn.ReLU(),
            nn.Linear(spec.hidden_dim, spec.embedding_dim),
        )

    def forward(self, user_x: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        rows, mask = lookup_rows(self.id_lookup, history)
        pooled = (self.history_embedding(rows) * mask.unsqueeze(-1)).sum(dim=1)
        pooled = pooled / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        z = (user_x - self.user_mean) / self.user_std
        return F.normalize(self.mlp(torch.cat([z, pooled], dim=1)), dim=-1)


class ItemTower(nn.Module):
    """Id embedding + category multi-hot + log duration + hashed creator -> L2-normalised."""

    duration_mean: torch.Tensor
    duration_std: torch.Tensor

    def __init__(self, spec: TwoTowerSpec) -> None:
        super().__init__()
        e = spec.embedding_dim
        self.id_embedding = nn.Embedding(spec.n_items, e)
        self.creator_embedding = nn.Embedding(spec.n_creator_buckets, e)
        nn.init.normal_(self.id_embedding.weight, std=0.05)
        nn.init.normal_(self.creator_embedding.weight, std=0.05)
        self.category = nn.Linear(N_CATEGORIES, e, bias=False)
        self.register_buffer("duration_mean", torch.zeros(()))
        self.register_buffer("duration_std", torch.ones(()))
        self.mlp = nn.Sequential(
            nn.Linear(3 * e + 1, spec.hidden_dim), nn.ReLU(), nn.Linear(spec.hidden_dim, e)
        )

    def forward(
        self,
        rows: torch.Tensor,
        known: torch.Tensor,
        categories: torch.Tensor,
        log_duration: torch.Tensor,
        creator_bucket: torch.Tensor,
    ) -> torch.Tensor:
        """``known`` (float 0/1) zeroes the id embedding of videos the model never saw."""
        parts = [
            self.id_embedding(rows) * known.unsqueeze(-1),
            self.category(categories),
            self.creator_embedding(creator_bucket),
            ((log_duration - self.duration_mean) / self.duration_std).unsqueeze(-1),
        ]
        return F.normalize(self.mlp(torch.cat(parts, dim=1)), dim=-1)


class TwoTower(nn.Module):
    """Both towers plus the training catalogue's content features (buffers, row-aligned)."""

    video_ids: torch.Tensor
    catalog_categories: torch.Tensor
    catalog_log_duration: torch.Tensor
    catalog_creator_bucket: torch.Tensor

    def __init__(self, spec: TwoTowerSpec) -> None:
        super().__init__()
        self.spec = spec
        self.user_tower = UserTower(spec)
        self.item_tower = ItemTower(spec)
        self.register_buffer("video_ids", torch.zeros(spec.n_items, dtype=torch.long))
        self.register_buffer("catalog_categories", torch.zeros(spec.n_items, N_CATEGORIES))
        self.register_buffer("catalog_log_duration", torch.zeros(spec.n_items))
        self.register_buffer("catalog_creator_bucket", torch.zeros(spec.n_items, dtype=torch.long))

    def set_catalog(self, features: ItemFeatures) -> None:
        self.video_ids.copy_(torch.from_numpy(features.video_ids))
        self.catalog_categories.copy_(torch.from_numpy(features.categories))
        self.catalog_log_duration.copy_(torch.from_numpy(features.log_duration))
        self.catalog_creator_bucket.copy_(torch.from_numpy(features.creator_bucket))
        lookup = torch.from_numpy(id_lookup(features.video_ids))
        self.user_tower.id_lookup.copy_(lookup)

    def catalog_items(self, rows: torch.Tensor) -> torch.Tensor:
        """Item embeddings for catalogue rows (all known to the id embedding)."""
        return self.item_tower(
            rows,
            torch.ones(rows.shape, dtype=torch.float32),
            self.catalog_categories[rows],
            self.catalog_log_duration[rows],
            self.catalog_creator_bucket[rows],
        )

    @torch.no_grad()
    def catalog_embeddings(self, batch_size: int = 8192) -> np.ndarray:
        """float32 ``[M, E]`` embeddings of the training catalogue, aligned with ``video_ids``."""
        was_training = self.training
        self.eval()
        rows = torch.arange(self.spec.n_items)
        out = torch.cat([self.catalog_items(r) for r in rows.split(batch_size)])
        self.train(was_training)
        return out.numpy().astype(np.float32)

    @torch.no_grad()
    def embed_videos(self, videos: pl.DataFrame) -> np.ndarray:
        """Embeddings for any ``videos`` table (e.g. fresh uploads): unseen ids use content only."""
        feats = item_features(videos, self.spec.n_creator_buckets)
        rows, known = lookup_rows(self.user_tower.id_lookup, torch.from_numpy(feats.video_ids))
        self.eval()
        out = self.item_tower(
            rows,
            known,
            torch.from_numpy(feats.categories),
            torch.from_numpy(feats.log_duration),
            torch.from_numpy(feats.creator_bucket),
        )
        return out.numpy().astype(np.float32)


def sampled_softmax_loss(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    item_log_q: torch.Tensor,
    item_rows: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """In-batch softmax with logQ correction; row i's positive is column i.

    ``item_log_q[j]`` is the log sampling probability of the item in column j. Other rows
    holding the same item are masked: they are not negatives of row i.
    """
    logits = user_emb @ item_emb.T / temperature - item_log_q.unsqueeze(0)
    duplicate = item_rows.unsqueeze(0) == item_rows.unsqueeze(1)
    duplicate.fill_diagonal_(False)
    logits = logits.masked_fill(duplicate, float("-inf"))
    return F.cross_entropy(logits, torch.arange(user_emb.shape[0]))


def sampling_log_q(item_rows: np.ndarray, n_items: int) -> np.ndarray:
    """log P(an in-batch positive is item j), estimated from training-set frequency."""
    counts = np.bincount(item_rows, minlength=n_items).astype(np.float64)
    return np.log(np.maximum(counts, 1.0) / max(item_rows.size, 1)).astype(np.float32)


@dataclass
class TwoTowerResult:
    model: TwoTower
    item_embeddings: np.ndarray  # float32 [M, E], row i is video_ids[i]
    video_ids: np.ndarray  # int64 [M]
    losses: list[float]  # mean training loss per epoch
    params: TwoTowerParams

    @property
    def user_tower(self) -> UserTower:
        return self.model.user_tower


def train_two_tower(
    examples: pl.DataFrame,
    videos: pl.DataFrame,
    cfg: TrainConfig,
    progress: bool = True,
    params: TwoTowerParams | None = None,
) -> TwoTowerResult:
    """Train on retrieval examples (one row per click) over the catalogue ``videos``."""
    params = params or TwoTowerParams()
    if len(examples) == 0:
        raise InputError(f"{RETRIEVAL_TABLE}: table is empty")
    generator = prepare_torch(cfg)
    user_x = float_matrix(examples, "user_x", RETRIEVAL_TABLE)
    history = int_matrix(examples, "history", RETRIEVAL_TABLE)
    features = item_features(videos.sort("video_id"), params.n_creator_buckets)
    lookup = id_lookup(features.video_ids)
    clicked = int_vector(examples, "video_id", RETRIEVAL_TABLE)
    rows = lookup[np.clip(clicked, 0, lookup.size - 1)]
    if ((clicked < 0) | (clicked >= lookup.size) | (rows < 0)).any():
        raise InputError(
            f"{RETRIEVAL_TABLE}: column 'video_id' has ids missing from {VIDEOS_TABLE}"
        )

    spec = TwoTowerSpec(
        user_dim=user_x.shape[1],
        n_items=features.video_ids.size,
        id_lookup_size=lookup.size,
        embedding_dim=cfg.embedding_dim,
        hidden_dim=params.hidden_dim,
        n_creator_buckets=params.n_creator_buckets,
        temperature=params.temperature,
    )
    model = TwoTower(spec)
    model.set_catalog(features)
    model.user_tower.user_mean.copy_(torch.from_numpy(user_x.mean(axis=0)))
    model.user_tower.user_std.copy_(torch.from_numpy(user_x.std(axis=0) + 1e-6))
    model.item_tower.duration_mean.fill_(float(features.log_duration.mean()))
    model.item_tower.duration_std.fill_(float(features.log_duration.std()) + 1e-6)

    log_q = torch.from_numpy(sampling_log_q(rows, spec.n_items))
    ux, hist, item_rows = map(torch.from_numpy, (user_x, history, rows))
    optimizer = torch.optim.Adam(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    losses: list[float] = []
    model.train()
    for epoch in range(params.epochs):
        total, batches = 0.0, 0
        desc = f"two-tower epoch {epoch + 1}/{params.epochs}"
        for idx in minibatches(len(examples), params.batch_size, generator, progress, desc):
            if idx.numel() < 2:
                continue  # a lone row has no in-batch negatives
            r = item_rows[idx]
            loss = sampled_softmax_loss(
                model.user_tower(ux[idx], hist[idx]),
                model.catalog_items(r),
                log_q[r],
                r,
                spec.temperature,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            batches += 1
        losses.append(total / max(batches, 1))
    model.eval()
    return TwoTowerResult(
        model=model,
        item_embeddings=model.catalog_embeddings(),
        video_ids=features.video_ids.copy(),
        losses=losses,
        params=params,
    )


@torch.no_grad()
def user_embeddings(
    tower: UserTower, user_x: np.ndarray, history: np.ndarray, batch_size: int = 8192
) -> np.ndarray:
    """float32 ``[B, E]`` user embeddings, computed in batches."""
    tower.eval()
    ux = torch.tensor(user_x, dtype=torch.float32)
    hist = torch.tensor(history, dtype=torch.int64)
    parts = [
        tower(ux[i : i + batch_size], hist[i : i + batch_size])
        for i in range(0, ux.shape[0], batch_size)
    ]
    return (
        torch.cat(parts).numpy()
        if parts
        else np.zeros((0, tower.history_embedding.embedding_dim), np.float32)
    )

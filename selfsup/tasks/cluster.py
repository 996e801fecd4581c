"""Clustering without labels: k-means, then SCAN.

SCAN (Van Gansbeke et al. 2020, "SCAN: Learning to Classify Images without Labels"):

1. mine the K nearest neighbours N_X of every sample in the pretrained embedding space;
2. train a clustering head Phi (softmax over C clusters) with

       L = -1/|D| sum_X sum_{k in N_X} log <Phi(X), Phi(k)>  -  lambda * H(mean_X Phi(X)),
       H(p) = -sum_c p_c log p_c

   the first term makes neighbours agree and be confident, the entropy of the mean
   assignment spreads samples over all clusters (lambda = 5 in the paper);
3. self-label: samples whose weak-view prediction is confident (max > 0.99) become
   pseudo-labels for their strongly augmented view, with cross-entropy weighted by
   inverse pseudo-label frequency so large clusters do not swallow small ones.

By default the backbone stays frozen and the heads train on embeddings: the clean
embedding and those of ``views`` augmented copies (the modality's SimCLR recipe) computed
once, one picked at random for each anchor and each neighbour. The inputs of the heads are
standardised, then L2-normalised embeddings; 10 heads train at once and the one of lowest
SCAN loss on the clean embeddings is kept (the paper's heads). Heads on fixed inputs need
a far higher learning rate than the paper's 1e-4 for a backbone: Adam at 1e-2 for SCAN,
1e-3 for self-labelling (at 1e-2 self-labelling emptied clusters; issue 19 measured both).
``fit_backbone`` (``cluster --update-backbone``) also updates a copy of the backbone, the
paper's default: heads first on frozen embeddings, then backbone and the kept head
together on augmented views at 1e-4, then self-labelling on the updated embeddings.

The number of clusters, when not given, is estimated by the eigengap heuristic (von
Luxburg 2007, "A Tutorial on Spectral Clustering", sec. 8.3) on a k-NN graph of a subsample.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from selfsup import modalities
from selfsup.atomic import check_output
from selfsup.config import ConfigError
from selfsup.evaluate.clustering import cluster_metrics, kmeans
from selfsup.evaluate.neighbours import l2_normalize, nearest_others
from selfsup.progress import bar
from selfsup.tasks.common import seeded


def estimate_clusters(embeddings: np.ndarray, max_clusters: int = 50, neighbours: int = 10,
                      sample: int = 2000, seed: int = 0) -> int:
    """Number of clusters by the largest gap between consecutive eigenvalues of the
    normalised Laplacian L = I - D^-1/2 W D^-1/2 of a symmetric k-NN graph: a graph with c
    well-separated groups has c eigenvalues near 0 and then a jump."""
    if len(embeddings) < 3:  # two samples allow two clusters and no other count >= 2
        return 2
    rng = np.random.default_rng(seed)
    neighbours = min(neighbours, len(embeddings) - 1)
    x = l2_normalize(embeddings)
    if len(x) > sample:
        x = x[rng.choice(len(x), sample, replace=False)]
    _, nearest = nearest_others(x, neighbours, kind="flat")
    w = np.zeros((len(x), len(x)))
    np.put_along_axis(w, nearest, 1.0, axis=1)
    w = np.maximum(w, w.T)
    d = 1 / np.sqrt(w.sum(axis=1))
    laplacian = np.eye(len(x)) - d[:, None] * w * d[None, :]
    eigenvalues = np.linalg.eigvalsh(laplacian)[: max_clusters + 1]
    gaps = np.diff(eigenvalues)
    return int(np.argmax(gaps[1:]) + 2)  # at least 2 clusters


def mine_neighbours(embeddings: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each sample's k nearest neighbours by cosine, itself excluded."""
    return nearest_others(embeddings, k)[1]


def scan_loss(anchors: torch.Tensor, neighbours: torch.Tensor, entropy_weight: float):
    """(loss, consistency, entropy) from the logits of anchors and of one neighbour each."""
    p_anchor, p_neighbour = anchors.softmax(dim=1), neighbours.softmax(dim=1)
    consistency = -torch.log((p_anchor * p_neighbour).sum(dim=1).clamp_min(1e-8)).mean()
    mean = p_anchor.mean(dim=0)
    entropy = -(mean * torch.log(mean.clamp_min(1e-8))).sum()
    return consistency - entropy_weight * entropy, consistency, entropy


class ClusterHeads(torch.nn.Module):
    """``heads`` linear softmax heads over ``n_clusters`` on standardised, L2-normalised
    embeddings (fixed statistics of the pretrained embeddings): ReLU features all share one
    orthant and differ by little in direction, which a linear head cannot pick up raw."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, n_clusters: int, heads: int = 1):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.n_clusters, self.heads = n_clusters, heads
        self.linear = torch.nn.Linear(len(mean), heads * n_clusters)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(heads, B, n_clusters) logits."""
        x = F.normalize((embeddings.float() - self.mean) / self.scale, dim=1)
        return self.linear(x).view(len(x), self.heads, self.n_clusters).transpose(0, 1)


class SCAN:
    """SCAN clustering heads on embeddings (scikit-learn style).

    ``fit(X, views=None)``: X (N, D) embeddings; ``views`` optional (V, N, D) embeddings of
    augmented copies of the same samples. Neighbours are mined on X; each step's anchor and
    neighbour are a random one of their clean or augmented embeddings (the paper's augmented
    anchors and neighbours, with the backbone frozen). ``heads`` heads train at once from
    different initialisations and the one of lowest SCAN loss on the clean embeddings is
    kept (the paper's choice), then self-labelled: confident (> ``confidence``) predictions
    on clean embeddings are the targets of the augmented ones, kept only if that lowers the
    head's SCAN loss (``self_label_kept_``). ``scan_labels_``: clusters before self-labelling,
    ``labels_`` after. ``fit_backbone`` also updates the backbone of a run (the paper's
    default)."""

    def __init__(self, n_clusters: int, neighbours: int = 20, entropy_weight: float = 5.0, heads: int = 10,
                 epochs: int = 100, self_label_epochs: int = 50, confidence: float = 0.99,
                 batch_size: int = 256, lr: float = 1e-2, self_label_lr: float = 1e-3, weight_decay: float = 1e-4,
                 seed: int = 0):
        if n_clusters < 2:
            raise ConfigError(f"n_clusters={n_clusters}: expected >= 2")
        if heads < 1:
            raise ConfigError(f"heads={heads}: expected >= 1")
        self.n_clusters, self.neighbours, self.entropy_weight = n_clusters, neighbours, entropy_weight
        self.heads, self.epochs, self.self_label_epochs, self.confidence = heads, epochs, self_label_epochs, confidence
        self.batch_size, self.lr, self.weight_decay, self.seed = batch_size, lr, weight_decay, seed
        self.self_label_lr = self_label_lr

    def _start(self, X: np.ndarray, neighbours=None) -> torch.Tensor:
        torch.manual_seed(self.seed)
        self.generator_ = seeded(self.seed)
        self.history_ = []  # mean loss, consistency and entropy of each epoch
        X = np.asarray(X, dtype=np.float32)
        self.heads_ = ClusterHeads(X.mean(axis=0), X.std(axis=0) + 1e-6, self.n_clusters, self.heads)
        if neighbours is None:
            neighbours = mine_neighbours(X, min(self.neighbours, len(X) - 1))
        neighbours = np.asarray(neighbours)
        if neighbours.ndim != 2 or len(neighbours) != len(X) or neighbours.min() < 0 or neighbours.max() >= len(X):
            raise ConfigError(f"neighbours: expected ({len(X)}, k) positions of samples, got shape {neighbours.shape}")
        return torch.from_numpy(neighbours.astype(np.int64))

    def _scan_epochs(self, n: int, neighbours: torch.Tensor, pair, parameters, epochs: int) -> None:
        """SCAN steps over all heads at once; ``pair(rows, partners)`` gives the embeddings of
        the anchors and of one mined neighbour each."""
        optimizer = torch.optim.Adam(parameters, weight_decay=self.weight_decay)
        generator, batch = self.generator_, min(self.batch_size, n)
        for _ in bar(range(epochs), desc="SCAN", unit="epoch"):
            totals = torch.zeros(3)
            for rows in torch.randperm(n, generator=generator).split(batch):
                partners = neighbours[rows, torch.randint(neighbours.shape[1], (len(rows),), generator=generator)]
                anchors, others = pair(rows, partners)
                losses = [scan_loss(a, b, self.entropy_weight)
                          for a, b in zip(self.heads_(anchors), self.heads_(others))]
                loss = sum(l[0] for l in losses)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                totals += torch.tensor([[t.item() for t in l] for l in losses]).mean(dim=0) * len(rows) / n
            self.history_.append(dict(zip(("loss", "consistency", "entropy"), totals.tolist())))

    @torch.no_grad()
    def head_losses(self, embeddings, neighbours) -> np.ndarray:
        """SCAN loss of every head on clean ``embeddings`` (N, D) with every mined neighbour."""
        logits = self.heads_(torch.as_tensor(np.asarray(embeddings, dtype=np.float32)))
        p = logits.softmax(dim=2)  # (heads, N, C)
        agreement = torch.einsum("hnc,hnkc->hnk", p, p[:, torch.as_tensor(neighbours)])
        consistency = -torch.log(agreement.clamp_min(1e-8)).mean(dim=(1, 2))
        mean = p.mean(dim=1)
        entropy = -(mean * torch.log(mean.clamp_min(1e-8))).sum(dim=1)
        return (consistency - self.entropy_weight * entropy).numpy()

    def _keep_best_head(self, X, neighbours) -> None:
        self.head_losses_ = self.head_losses(X, neighbours)
        self.best_head_ = int(np.argmin(self.head_losses_))
        best = ClusterHeads(self.heads_.mean, self.heads_.scale, self.n_clusters, 1)
        rows = slice(self.best_head_ * self.n_clusters, (self.best_head_ + 1) * self.n_clusters)
        best.linear.weight.data.copy_(self.heads_.linear.weight.data[rows])
        best.linear.bias.data.copy_(self.heads_.linear.bias.data[rows])
        self.heads_ = best

    def _self_label(self, clean: torch.Tensor, augmented: torch.Tensor, neighbours: torch.Tensor) -> None:
        """Confident predictions on clean embeddings become targets for augmented ones,
        cross-entropy weighted by inverse pseudo-label frequency."""
        optimizer = torch.optim.Adam(self.heads_.parameters(), lr=self.self_label_lr, weight_decay=self.weight_decay)
        generator, n = self.generator_, len(clean)
        self.self_labelled_ = 0.0  # fraction of confident samples in the last self-labelling epoch
        before = copy.deepcopy(self.heads_.state_dict())
        loss_before = float(self.head_losses(clean, neighbours)[0])
        for _ in bar(range(self.self_label_epochs), desc="SCAN self-labelling", unit="epoch"):
            confident = 0
            for rows in torch.randperm(n, generator=generator).split(min(self.batch_size, n)):
                with torch.no_grad():
                    confidence, pseudo = self.heads_(clean[rows])[0].softmax(dim=1).max(dim=1)
                keep = confidence > self.confidence
                if keep.sum() == 0:
                    continue
                counts = torch.bincount(pseudo[keep], minlength=self.n_clusters).float()
                weight = torch.where(counts > 0, 1 / counts.clamp_min(1), 0.0)
                weight = weight / weight[counts > 0].sum() * (counts > 0).sum()
                picked = torch.randint(len(augmented), (int(keep.sum()),), generator=generator)
                strong = augmented[picked, rows[keep]]
                loss = F.cross_entropy(self.heads_(strong)[0], pseudo[keep], weight=weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                confident += int(keep.sum())
            self.self_labelled_ = confident / n
        # on fixed embeddings self-labelling can also merge clusters; keep it only where it
        # lowers the SCAN loss (the label-free criterion that chose the head)
        self.self_label_losses_ = (loss_before, float(self.head_losses(clean, neighbours)[0]))
        self.self_label_kept_ = self.self_label_losses_[1] <= self.self_label_losses_[0]
        if not self.self_label_kept_:
            self.heads_.load_state_dict(before)

    def fit(self, X: np.ndarray, views: np.ndarray | None = None, neighbours: np.ndarray | None = None) -> "SCAN":
        """``neighbours``: (N, k) positions of each sample's neighbours (default: mined on X)."""
        neighbours = self._start(X, neighbours)
        clean = torch.from_numpy(np.asarray(X, dtype=np.float32))
        every = clean[None] if views is None else torch.cat([clean[None], torch.as_tensor(views, dtype=torch.float32)])
        self._frozen_epochs(every, neighbours)
        self._keep_best_head(clean.numpy(), neighbours.numpy())
        self.scan_labels_ = self.predict(clean.numpy())
        self._self_label(clean, every[1:] if len(every) > 1 else every, neighbours)
        self.labels_ = self.predict(clean.numpy())
        return self

    def _frozen_epochs(self, every: torch.Tensor, neighbours: torch.Tensor) -> None:
        """``epochs`` of SCAN on (views, N, D) embeddings, the clean ones first."""
        def pair(rows, partners):  # a random clean or augmented embedding of each
            views_picked = torch.randint(len(every), (2, len(rows)), generator=self.generator_)
            return every[views_picked[0], rows], every[views_picked[1], partners]

        self._scan_epochs(every.shape[1], neighbours, pair, [{"params": self.heads_.parameters(), "lr": self.lr}],
                          self.epochs)

    def fit_backbone(self, embedded, views: int = 4, epochs: int = 10, backbone_lr: float = 1e-4) -> "SCAN":
        """SCAN with the backbone of ``embedded``'s run updated too (the paper's default).
        First the heads are fitted on the frozen embeddings (as ``fit``, ``views`` augmented
        copies) and the best one kept, so that the backbone's first gradients come from a
        head that already clusters; then a copy of the backbone and that head are trained
        together for ``epochs`` on augmented views (the modality's SimCLR recipe) of each
        sample and of one of its neighbours (mined on the pretrained embeddings), Adam at
        ``backbone_lr`` for both. The backbone stays in eval mode (batch-norm statistics of
        pretraining), so that the embeddings it is trained on are those it gives afterwards.
        Then self-labelling on embeddings of the updated backbone. Sets ``method_`` to the
        updated model and ``embedded_`` to its embeddings."""
        import inspect
        from dataclasses import replace

        from selfsup.tasks.common import embed_augmented, embed_source

        config, method = embedded.run
        neighbours = self._start(embedded.embeddings)
        clean = torch.from_numpy(np.asarray(embedded.embeddings, dtype=np.float32))
        every = clean[None] if views == 0 else torch.cat([clean[None], torch.from_numpy(
            embed_augmented(embedded, views, self.seed))])
        self._frozen_epochs(every, neighbours)
        self._keep_best_head(clean.numpy(), neighbours.numpy())
        self.frozen_labels_ = self.predict(clean.numpy())

        method, where = copy.deepcopy(method).eval(), embedded.placement
        method.to(where.device)
        self.heads_.to(where.device)
        embed = inspect.unwrap(type(method).embed)  # the representation, without embed's no_grad
        samples = embedded.source.samples
        recipe = modalities.get(embedded.source.modality).views("simclr", config.image_size)
        recipe = replace(recipe, views=recipe.views[:1])

        def pair(rows, partners):
            both = samples[torch.cat([rows, partners])].to(where.device)
            (x,) = recipe(both, self.generator_, config.mean, config.std)
            with where.autocast():
                z = embed(method, x).float()
            return z[:len(rows)], z[len(rows):]

        self._scan_epochs(len(samples), neighbours, pair, [{"params": method.parameters(), "lr": backbone_lr},
                                                           {"params": self.heads_.parameters(), "lr": backbone_lr}],
                          epochs)
        self.heads_.cpu()
        self.method_ = method
        updated = replace(embedded, run=(config, method))
        clean = torch.from_numpy(embed_source(method, config, embedded.source, where))
        augmented = torch.from_numpy(embed_augmented(updated, views, self.seed)) if views > 0 else clean[None]
        self.embedded_ = replace(updated, embeddings=clean.numpy())
        self.scan_labels_ = self.predict(clean.numpy())
        self._self_label(clean, augmented, neighbours)
        self.labels_ = self.predict(clean.numpy())
        return self

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Cluster probabilities (N, n_clusters) of embeddings X by the kept head."""
        return self.heads_(torch.as_tensor(np.asarray(X, dtype=np.float32)))[0].softmax(dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def cluster(run_or_file, data: str | None = None, n_clusters: int | None = None, views: int = 4,
            epochs: int = 100, self_label_epochs: int = 50, seed: int = 0, out=None,
            accelerator: str | None = None, devices: str | None = None, heads: int = 10,
            update_backbone: bool = False, backbone_epochs: int = 20, entropy_weight: float = 5.0) -> dict:
    """k-means and SCAN cluster ids for every sample of ``data``; with labels, their
    accuracy (Hungarian), NMI and ARI, for SCAN before (``scan_head``) and after
    self-labelling (``scan``). ``views``: augmented copies embedded for SCAN (needs a run
    directory; none with an embeddings file). ``heads``: SCAN heads trained, the one of
    lowest loss kept. ``update_backbone``: after ``epochs`` on frozen embeddings, fine-tune
    a copy of the run's backbone with that head and the SCAN loss on augmented views for
    ``backbone_epochs`` (the paper's default; slower; see ``SCAN.fit_backbone``), else
    train the heads on frozen embeddings for ``epochs`` only. ``out``: write ``clusters.tsv``.
    ``accelerator``/``devices``: where a run embeds ``data`` (default: the run's, else CPU)."""
    from selfsup.data import DataError
    from selfsup.tasks.common import check_count, load_embeddings

    if out is not None:
        check_output(out)
    embedded = load_embeddings(run_or_file, data, accelerator, devices)
    if len(embedded) < 2:
        raise DataError(f"{run_or_file}: {len(embedded)} sample(s); clustering needs at least 2")
    if n_clusters is not None:
        check_count("clusters", n_clusters, len(embedded), at_least=2)
    check_count("views", views, len(embedded), at_least=0, at_most=1000)
    check_count("epochs", epochs, len(embedded), at_most=100_000)
    check_count("self_label_epochs", self_label_epochs, len(embedded), at_least=0, at_most=100_000)
    check_count("heads", heads, len(embedded), at_most=1000)
    if update_backbone:
        check_count("backbone_epochs", backbone_epochs, len(embedded), at_most=100_000)
        if embedded.source is None:
            raise ConfigError(f"update_backbone: needs a run directory, got the embeddings file {run_or_file}")
    estimated = n_clusters is None
    k = estimate_clusters(embedded.embeddings, seed=seed) if estimated else n_clusters
    by_kmeans = kmeans(embedded.embeddings, k, seed)
    scan = SCAN(k, entropy_weight=entropy_weight, heads=heads, epochs=epochs, self_label_epochs=self_label_epochs,
                seed=seed)
    if update_backbone:
        scan.fit_backbone(embedded, views, backbone_epochs)
    else:
        augmented = None
        if embedded.source is not None and views > 0:
            from selfsup.tasks.common import embed_augmented

            augmented = embed_augmented(embedded, views, seed)
        scan.fit(embedded.embeddings, augmented)
    result = {"samples": len(embedded), "clusters": k, "clusters_estimated": estimated,
              "backbone_updated": update_backbone, "scan_head": scan.best_head_,
              "self_label_kept": bool(scan.self_label_kept_),
              "kmeans_ids": by_kmeans.tolist(), "scan_ids": scan.labels_.tolist()}
    if embedded.labels is not None:
        result["classes"] = int(len(np.unique(embedded.labels)))
        result["kmeans"] = cluster_metrics(embedded.labels, by_kmeans)
        result["scan_before_self_label"] = cluster_metrics(embedded.labels, scan.scan_labels_)
        result["scan"] = cluster_metrics(embedded.labels, scan.labels_)
    if out is not None:
        from selfsup.tasks.neighbors import write_table

        write_table(out, ("id", "kmeans", "scan"), zip(embedded.ids, by_kmeans.tolist(), scan.labels_.tolist()))
    return result

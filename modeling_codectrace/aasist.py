"""AASIST building blocks: the shared spectro-temporal trunk and one graph-attention branch per task.

Module and parameter names follow the official W2V2-AASIST source-tracing baseline so that the
authors' released weights map one to one (see `convert_official.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pairwise_products(x: torch.Tensor) -> torch.Tensor:
    """(batch, nodes, dim) -> (batch, nodes, nodes, dim): every node times every node."""
    return x.unsqueeze(2) * x.unsqueeze(1)


def _batch_norm_nodes(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    shape = x.shape
    return bn(x.reshape(-1, shape[-1])).reshape(shape)


class GraphAttentionLayer(nn.Module):
    """Graph attention over one homogeneous graph (the spectral or the temporal nodes)."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = nn.Parameter(torch.empty(out_dim, 1))
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU()
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_drop(x)
        scores = torch.tanh(self.att_proj(_pairwise_products(x))) @ self.att_weight
        att_map = F.softmax(scores / self.temperature, dim=-2).squeeze(-1)
        x = self.proj_with_att(att_map @ x) + self.proj_without_att(x)
        return self.act(_batch_norm_nodes(self.bn, x))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous stacking graph attention (HS-GAL): two node types plus a master node."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight22 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight12 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weightM = nn.Parameter(torch.empty(out_dim, 1))
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU()
        self.temperature = temperature

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n1, n2 = x1.size(1), x2.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)
        x = self.input_drop(x)

        # Edge scores: one attention vector per block (type1-type1, type2-type2, and across types).
        projected = torch.tanh(self.att_proj(_pairwise_products(x)))
        is_type1 = torch.arange(n1 + n2, device=x.device) < n1
        same1 = (is_type1[:, None] & is_type1[None, :]).unsqueeze(-1)
        same2 = (~is_type1[:, None] & ~is_type1[None, :]).unsqueeze(-1)
        scores = torch.where(
            same1,
            projected @ self.att_weight11,
            torch.where(same2, projected @ self.att_weight22, projected @ self.att_weight12),
        )
        att_map = F.softmax(scores / self.temperature, dim=-2).squeeze(-1)

        # The master node attends over all nodes (directional edges into it).
        master_scores = torch.tanh(self.att_projM(x * master)) @ self.att_weightM
        master_att = F.softmax(master_scores / self.temperature, dim=-2).squeeze(-1).unsqueeze(1)
        master = self.proj_with_attM(master_att @ x) + self.proj_without_attM(master)

        x = self.proj_with_att(att_map @ x) + self.proj_without_att(x)
        x = self.act(_batch_norm_nodes(self.bn, x))
        return x[:, :n1], x[:, n1:], master


class GraphPool(nn.Module):
    """Keeps the top `ratio` of nodes by a learned sigmoid score, scaling each kept node by its score."""

    def __init__(self, ratio: float, in_dim: int, dropout: float):
        super().__init__()
        self.ratio = ratio
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        scores = torch.sigmoid(self.proj(self.drop(h)))
        keep = max(int(h.size(1) * self.ratio), 1)
        _, idx = torch.topk(scores, keep, dim=1)
        return torch.gather(h * scores, 1, idx.expand(-1, -1, h.size(-1)))


def parameters_as_buffers(module: nn.Module) -> nn.Module:
    """Turns a module's own parameters into buffers of the same names and values, for modules whose output nothing
    reads: checkpoints load as before, and no optimizer or DDP reducer waits for a gradient that can never come (DDP
    without unused-parameter search, which the Trainer selects under gradient checkpointing, stops at step 2)."""
    for name, parameter in list(module.named_parameters(recurse=False)):
        delattr(module, name)
        module.register_buffer(name, parameter.detach())
    return module


class RunningStatisticsBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d whose output nobody reads: only its running statistics change; its affine weight and bias are
    buffers (`parameters_as_buffers`)."""

    def __init__(self, num_features: int):
        super().__init__(num_features)
        parameters_as_buffers(self)


class ResidualBlock(nn.Module):
    """RawNet2-style residual block of the official baseline.

    Faithful quirk: `conv1` reads the block's input, not the output of `bn1` + SELU. `bn1` exists
    (and is run, so its running statistics update) in every block but the first, as in the official
    code, so that released weights load and behave identically. Its output is discarded, so it is a
    `RunningStatisticsBatchNorm2d` (nothing to train).
    """

    def __init__(self, in_channels: int, out_channels: int, first: bool = False):
        super().__init__()
        self.first = first
        if not first:
            self.bn1 = RunningStatisticsBatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(2, 3), padding=(1, 1))
        self.selu = nn.SELU()
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(2, 3), padding=(0, 1))
        if in_channels != out_channels:
            self.conv_downsample = nn.Conv2d(in_channels, out_channels, kernel_size=(1, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.first and self.training:
            # Computed and discarded, as in the official code (see the class doc): only its running
            # statistics change, so eval mode can skip it.
            self.bn1(x)
        out = self.conv2(self.selu(self.bn2(self.conv1(x))))
        identity = self.conv_downsample(x) if hasattr(self, "conv_downsample") else x
        return out + identity


class AasistTrunk(nn.Module):
    """Shared part: projection, 3x3 max-pool over (feature, time), six residual blocks, attention map."""

    def __init__(self, hidden_size: int, projection_dim: int, encoder_filters: list[list[int]]):
        super().__init__()
        channels = encoder_filters[-1][-1]
        self.LL = nn.Linear(hidden_size, projection_dim)
        self.first_bn = nn.BatchNorm2d(1)
        self.first_bn1 = nn.BatchNorm2d(channels)
        self.selu = nn.SELU()
        # Each block sits in its own Sequential, as in the official code (names `encoder.N.0.*`).
        self.encoder = nn.Sequential(
            *(nn.Sequential(ResidualBlock(a, b, first=i == 0)) for i, (a, b) in enumerate(encoder_filters))
        )
        self.attention = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, kernel_size=1),
            nn.SELU(),
            nn.BatchNorm2d(2 * channels),
            nn.Conv2d(2 * channels, channels, kernel_size=1),
        )

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, frames, hidden) -> feature map and attention logits, both (batch, C, F, T)."""
        x = self.LL(hidden_states).transpose(1, 2).unsqueeze(1)
        x = self.selu(self.first_bn(F.max_pool2d(x, (3, 3))))
        x = self.selu(self.first_bn1(self.encoder(x)))
        return x, self.attention(x)


class GraphBranch(nn.Module):
    """One task head: spectral and temporal graphs, two HS-GAL paths with master nodes, readout."""

    def __init__(
        self,
        channels: int,
        spectral_nodes: int,
        gat_dims: list[int],
        pool_ratios: list[float],
        temperatures: list[float],
        num_classes: int,
    ):
        super().__init__()
        d0, d1 = gat_dims
        self.pos_S = nn.Parameter(torch.empty(1, spectral_nodes, channels))
        self.master1 = nn.Parameter(torch.empty(1, 1, d0))
        self.master2 = nn.Parameter(torch.empty(1, 1, d0))
        self.GAT_layer_S = GraphAttentionLayer(channels, d0, temperature=temperatures[0])
        self.GAT_layer_T = GraphAttentionLayer(channels, d0, temperature=temperatures[1])
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(d0, d1, temperature=temperatures[2])
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(d1, d1, temperature=temperatures[2])
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(d0, d1, temperature=temperatures[2])
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(d1, d1, temperature=temperatures[2])
        self.pool_S = GraphPool(pool_ratios[0], d0, 0.3)
        self.pool_T = GraphPool(pool_ratios[1], d0, 0.3)
        self.pool_hS1 = GraphPool(pool_ratios[2], d1, 0.3)
        self.pool_hT1 = GraphPool(pool_ratios[2], d1, 0.3)
        self.pool_hS2 = GraphPool(pool_ratios[2], d1, 0.3)
        self.pool_hT2 = GraphPool(pool_ratios[2], d1, 0.3)
        self.drop = nn.Dropout(0.5)
        self.drop_way = nn.Dropout(0.2)
        self.out_layer = nn.Linear(5 * d1, num_classes)

    def _path(self, first, second, out_T, out_S, master, pool_S, pool_T):
        out_T1, out_S1, master1 = first(out_T, out_S, master)
        out_S1, out_T1 = pool_S(out_S1), pool_T(out_T1)
        aug_T, aug_S, aug_master = second(out_T1, out_S1, master1)
        return out_T1 + aug_T, out_S1 + aug_S, master1 + aug_master

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x, w: (batch, C, F, T) -> (logits (batch, classes), embedding (batch, 5 * gat_dims[1]))."""
        e_S = torch.sum(x * F.softmax(w, dim=-1), dim=-1).transpose(1, 2) + self.pos_S
        e_T = torch.sum(x * F.softmax(w, dim=-2), dim=-2).transpose(1, 2)
        out_S = self.pool_S(self.GAT_layer_S(e_S))
        out_T = self.pool_T(self.GAT_layer_T(e_T))

        batch = x.size(0)
        T1, S1, M1 = self._path(
            self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12, out_T, out_S,
            self.master1.expand(batch, -1, -1), self.pool_hS1, self.pool_hT1,
        )
        T2, S2, M2 = self._path(
            self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22, out_T, out_S,
            self.master2.expand(batch, -1, -1), self.pool_hS2, self.pool_hT2,
        )
        out_T = torch.max(self.drop_way(T1), self.drop_way(T2))
        out_S = torch.max(self.drop_way(S1), self.drop_way(S2))
        master = torch.max(self.drop_way(M1), self.drop_way(M2))

        embedding = torch.cat(
            [
                out_T.abs().max(dim=1).values,
                out_T.mean(dim=1),
                out_S.abs().max(dim=1).values,
                out_S.mean(dim=1),
                master.squeeze(1),
            ],
            dim=1,
        )
        return self.out_layer(self.drop(embedding)), embedding


class AasistHeads:
    """The paper's heads behind the model's heads interface: the shared trunk, then one graph branch per task.

    A view, not a module: the model registers the trunk and branches under the official checkpoints' names
    (`trunk`, `binary_branch`, `multiclass_branch_qs`, ...), and this only calls them. The trunk pools over every
    frame (AASIST has no masking), so `frame_mask` is not used: prefer equal-length windows, as the paper does.
    """

    min_frames = 3  # the trunk's 3x3 max-pool

    def __init__(self, trunk: AasistTrunk, branches: dict[str, GraphBranch]):
        self.trunk, self.branches = trunk, branches

    def __call__(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None = None):
        features, attention = self.trunk(hidden)
        outputs = {task: branch(features, attention) for task, branch in self.branches.items()}
        return {task: out[0] for task, out in outputs.items()}, {task: out[1] for task, out in outputs.items()}

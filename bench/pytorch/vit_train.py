"""PyTorch peer of our training step (`pit bench train`): the same ViT (SPEC.md §1,
lib/models/vit.ts; p = 1 is PiT) or the same MAE (SPEC.md §3, lib/models/mae.ts), the same
recipes (lib/train/tasks), images/s = batch / median step time.

--task classify (default): forward (bf16 autocast on CUDA by default, f32 on CPU), cross-entropy
with label smoothing 0.1, backward, clip_grad_norm_(1.0), AdamW (lr 1e-3, betas (0.9, 0.95),
weight decay 0.05 except on 1-D parameters, cls_token and pos_embed; fused on CUDA where this
torch has it), zero_grad(set_to_none=True).

--task mae: the masked autoencoder's forward (random masking per sample, the encoder on the
int(N·(1 − r)) + 1 kept tokens, the decoder on all N + 1) and its loss (MSE over the masked
tokens), backward, AdamW as ours pre-trains (lr = blr·batch/256, blr 1e-2, betas (0.9, 0.95),
weight decay 0.05 except on 1-D parameters and biases: SPEC §3), no clipping (our recipe's
clipGrad is 0), zero_grad(set_to_none=True).

--task dit: one DiT diffusion training step (SPEC §4, lib/models/dit.ts, lib/train/tasks/diffuse.ts):
t uniform in [0, 1000) per sample, x_t = q_sample(x₀, t, ε), the DiT (facebookresearch/DiT's, learned σ;
labels dropped to the null class with probability 0.1), the hybrid loss of openai/guided-diffusion
(MSE on ε + the variational bound in bits, not rescaled, training the learned variance with ε̂
detached; the discretised Gaussian NLL at t = 0), backward, AdamW (DiT's lr 1e-4, betas
(0.9, 0.999), weight decay 0), no clipping, zero_grad(set_to_none=True).

--task dit-sample: one DDPM sampling step of the same DiT (eval, inference_mode): the DiT on
[x; x] with labels [y; null], classifier-free guidance at scale 1.5 on the noise channels, and
the ancestral update with the learned-range variance, x̂₀ clipped to [−1, 1]. images/s counts
the batch being drawn, not the 2·batch the DiT sees. --models for both: dit-<size>/<patch>
(<size> s, b, l, xl or d<depth>w<width>h<heads>), or a pit-/vit- name for the DiT of its depth,
width, heads and patch (as `pit bench train --task dit`).

Images are random: data loading is not timed.

    /usr/bin/python3 bench/pytorch/vit_train.py --models pit-t --sides 32 --out torch.jsonl
    /usr/bin/python3 bench/pytorch/vit_train.py --task classify,mae --models pit-t --sides 32 --decoder d8w512h16,d1w64h4
    /usr/bin/python3 bench/pytorch/vit_train.py --task dit,dit-sample --models dit-d4w64h4/1,dit-s/2 --sides 8,32 --batch 8
    python3 bench/pytorch/vit_train.py --device cuda --out torch.jsonl [--compile]
"""
import gc
import importlib
import inspect
import math
import random
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from attention import eager_attention
from common import (base_parser, emit, env, int_list, is_out_of_memory, note, result, rotation_count,
                    setup, str_list, time_calls)

SIZES = {'t': (12, 192, 12), 's': (12, 384, 12), 'b': (12, 768, 12), 'l': (24, 1024, 16)}  # depth, d, heads
PRESETS = {}   # SPEC §1: PiT-T/S/B/L (p = 1) and the paper's ViT baselines vit-t/2 … (p = 2)
for size, (depth, dim, heads) in SIZES.items():
    PRESETS[f'pit-{size}'] = dict(depth=depth, dim=dim, heads=heads, patch=1)
    PRESETS[f'vit-{size}/2'] = dict(depth=depth, dim=dim, heads=heads, patch=2)
SHAPE_KEYS = ('depth', 'dim', 'heads', 'patch')   # what a model name fixes
attend = getattr(F, 'scaled_dot_product_attention', eager_attention)
# Our MAE pre-training recipe (lib/train/tasks/pretrain.ts): mask ratio, base lr, and MAE's
# decoder for the preset encoders t, s, b, l (d…w…h… encoders get 2 blocks of their own width).
MAE_MASK_RATIO, MAE_BLR = 0.75, 1e-2
MAE_DECODER = dict(depth=8, dim=512, heads=16)
DECODER_NAME = re.compile(r'd(\d+)w(\d+)h(\d+)')
# DiT (SPEC §4, lib/models/names.ts ditSizes: DiT-S has 6 heads where ViT-S has 12), and the
# diffusion of our `pit diffuse` recipe: T steps, the timestep's frequency embedding width, the
# training label dropout, and the guidance scale of the timed sampling step (DiT's for metrics).
DIT_SIZES = {'s': (12, 384, 6), 'b': (12, 768, 12), 'l': (24, 1024, 16), 'xl': (28, 1152, 16)}   # depth, d, heads
DIT_TASKS = ('dit', 'dit-sample')
TIMESTEPS, FREQUENCY_DIM, CLASS_DROPOUT, GUIDANCE = 1000, 256, 0.1, 1.5


def parameter_count(depth, dim, patch, channels, tokens, classes, mlp_ratio=4):
    """SPEC §1: depth·(12d² + 13d) + (p²Cd + d) + d + (N+1)·d + 2d + (dK + K)."""
    d, hidden = dim, dim * mlp_ratio
    block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d)
    return depth * block + (patch * patch * channels * d + d) + d + (tokens + 1) * d + 2 * d + (d * classes + classes)


assert parameter_count(12, 192, 1, 3, 32 * 32, 100) == 5_555_812   # PiT-T on 32×32×3, 100 classes


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):   # (B, L, d) -> (B, L, d)
        B, L, d = x.shape
        q, k, v = self.qkv(x).reshape(B, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)   # 3 × (B, H, L, D)
        return self.proj(attend(q, k, v).transpose(1, 2).reshape(B, L, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, approximate='none'):
        super().__init__()
        # exact erf GELU (ViT, MAE) or its tanh approximation (DiT)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(approximate=approximate), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, dim * mlp_ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """timm's names; pool 'avg': mean of the non-cls tokens -> fc_norm -> head (our default)."""

    def __init__(self, side, channels, classes, depth, dim, heads, patch):
        super().__init__()
        tokens = (side // patch) ** 2
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(channels, dim, patch, stride=patch)   # weight (d, C, p, p)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 1e-6)
        self.pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, tokens + 1, dim), std=0.02))
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        for m in self.modules():   # timm init: trunc-normal 0.02 weights, zero biases
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, images):   # (B, C, H, W) -> (B, classes)
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)   # (B, N, d)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.blocks(x)
        return self.head(self.fc_norm(x[:, 1:].mean(dim=1)))


def mae_parameter_count(depth, dim, patch, channels, tokens, decoder_depth, decoder_dim, mlp_ratio=4):
    """lib/models/mae.ts maeParameterCount: the trunk (the ViT without fc_norm and head) + its
    norm + decoder_embed + mask_token + decoder_pos_embed (learned) + decoder blocks +
    decoder_norm + decoder_pred (dd -> p²C)."""
    def block(d):
        return 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * d * mlp_ratio + d * mlp_ratio) + (d * mlp_ratio * d + d)
    d, dd, values = dim, decoder_dim, patch * patch * channels
    trunk = depth * block(d) + (values * d + d) + d + (tokens + 1) * d
    return (trunk + 2 * d + (d * dd + dd) + dd + (tokens + 1) * dd + decoder_depth * block(dd) + 2 * dd + (dd * values + values))


assert mae_parameter_count(12, 192, 1, 3, 32 * 32, 8, 512) == 31_382_275   # PiT-T on 32×32×3, MAE's decoder d8w512h16


def patchify(images, patch):
    """(B, C, H, W) -> (B, N, C·p²), patches row-major, each in (channel, row, col) order: ours
    (lib/nn/patch_embed.ts, the stride-p convolution's layout), not MAE's (row, col, channel).
    The MAE loss's target; at p = 1 the two orders agree."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)
    return torch.einsum('bchpwq->bhwcpq', x).reshape(B, (H // patch) * (W // patch), C * patch * patch)


class MaskedAutoencoder(nn.Module):
    """facebookresearch/mae's MaskedAutoencoderViT (its names) with learned position tables in
    encoder and decoder (SPEC §3, ours by default), as lib/models/mae.ts computes it."""

    def __init__(self, side, channels, depth, dim, heads, patch, decoder_depth, decoder_dim, decoder_heads, mask_ratio=0.75):
        super().__init__()
        tokens = (side // patch) ** 2
        self.patch, self.mask_ratio = patch, mask_ratio
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(channels, dim, patch, stride=patch)   # weight (d, C, p, p)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim).normal_(std=0.02))
        self.pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, tokens + 1, dim), std=0.02))
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.empty(1, 1, decoder_dim).normal_(std=0.02))
        self.decoder_pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.empty(1, tokens + 1, decoder_dim), std=0.02))
        self.decoder_blocks = nn.Sequential(*[Block(decoder_dim, decoder_heads) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, patch * patch * channels)
        for m in self.modules():   # MAE's init: xavier-uniform (patch embed on its flattened view), zero biases
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
                nn.init.zeros_(m.bias)

    def random_masking(self, x):   # (B, N, d) -> kept (B, K, d), mask (B, N), ids_restore (B, N)
        B, N, d = x.shape
        keep = int(N * (1 - self.mask_ratio))
        noise = torch.rand(B, N, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)   # ascending: the first K are kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        kept = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(B, N, device=x.device)
        mask[:, :keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    def forward_encoder(self, images):   # (B, C, H, W) -> latent (B, K + 1, d), mask, ids_restore
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:]   # (B, N, d)
        x, mask, ids_restore = self.random_masking(x)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        return self.norm(self.blocks(torch.cat([cls, x], dim=1))), mask, ids_restore

    def forward_decoder(self, latent, ids_restore):   # (B, K + 1, d) -> (B, N, p²C)
        x = self.decoder_embed(latent)                                                  # (B, K + 1, dd)
        B, N = ids_restore.shape
        masked = self.mask_token.expand(B, N + 1 - x.shape[1], -1)
        x_ = torch.gather(torch.cat([x[:, 1:], masked], dim=1), 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))   # un-shuffle
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed                  # (B, N + 1, dd)
        return self.decoder_pred(self.decoder_norm(self.decoder_blocks(x)))[:, 1:]    # drop cls

    def forward(self, images):   # (B, C, H, W) -> scalar loss: per-token MSE averaged over the masked tokens
        latent, mask, ids_restore = self.forward_encoder(images)
        pred = self.forward_decoder(latent, ids_restore)
        loss = ((pred - patchify(images, self.patch)) ** 2).mean(dim=-1)   # (B, N)
        return (loss * mask).sum() / mask.sum()


def dit_parameter_count(depth, dim, patch, channels, classes, mlp_ratio=4):
    """lib/models/dit.ts ditParameterCount (learned σ, fixed sin-cos pos_embed, not counted):
    depth·(18d² + 15d) at MLP ratio 4 (qkv, proj, fc1, fc2, adaLN Linear(d, 6d)) + (256d + d) +
    (d² + d) (timestep MLP) + (K + 1)·d (label table) + (p²Cd + d) (patch embedding) +
    (2d² + 2d) + (dP + P) (final adaLN and Linear, P = p²·2C)."""
    d, hidden, outputs = dim, dim * mlp_ratio, patch * patch * 2 * channels
    block = (3 * d * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d) + (6 * d * d + 6 * d)
    return (depth * block + (FREQUENCY_DIM * d + d) + (d * d + d) + (classes + 1) * d + (patch * patch * channels * d + d)
            + (2 * d * d + 2 * d) + (d * outputs + outputs))


# DiT-XL/2 on 32×32×4 latents, 1000 classes: DiT's published 675,129,632 counts its fixed pos_embed (256 tokens × 1152).
assert dit_parameter_count(28, 1152, 2, 4, 1000) + 256 * 1152 == 675_129_632


def sincos_position_table(grid, dim):
    """lib/nn/position.ts's fixed table (DiT's get_2d_sincos_pos_embed), (1, grid², d): token (r, c)
    row-major; dims [0, d/2) encode c, [d/2, d) encode r, each half [sin(pos·ω_k), cos(pos·ω_k)]
    with ω_k = 10000^(−k/(d/4))."""
    q = dim // 4
    omega = 10000.0 ** (-torch.arange(q, dtype=torch.float64) / q)
    r, c = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing='ij')
    r, c = r.reshape(-1, 1) * omega, c.reshape(-1, 1) * omega   # (N, d/4) each
    return torch.cat([c.sin(), c.cos(), r.sin(), r.cos()], dim=1).float().unsqueeze(0)


def timestep_embedding(t, dim=FREQUENCY_DIM, max_period=10000):
    """DiT's: t (B) -> (B, dim) rows [cos(t·f_j), sin(t·f_j)], f_j = exp(−ln(max_period)·j/k), j < k = dim/2,
    in f32 on t's device (ours computes it in float64 on the host: 1e-4 apart at t near 1000)."""
    k = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(k, dtype=torch.float32, device=t.device) / k)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x, shift, scale):   # x (B, L, d), shift and scale (B, d)
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    """t (B) -> (B, d): the frequency embedding through Linear(256, d), SiLU, Linear(d, d)."""

    def __init__(self, dim):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FREQUENCY_DIM, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t):
        return self.mlp(timestep_embedding(t))


class LabelEmbedder(nn.Module):
    """y (B) in [0, K] -> (B, d) rows of a (K + 1, d) table, row K the null class; in training each
    label becomes K with probability CLASS_DROPOUT (DiT's token_drop: classifier-free guidance)."""

    def __init__(self, classes, dim):
        super().__init__()
        self.classes = classes
        self.embedding_table = nn.Embedding(classes + 1, dim)

    def forward(self, labels):
        if self.training:
            labels = torch.where(torch.rand(labels.shape[0], device=labels.device) < CLASS_DROPOUT, self.classes, labels)
        return self.embedding_table(labels)


class DiTBlock(nn.Module):
    """adaLN-Zero block (lib/nn/adaln_block.ts): LayerNorms without affine, shift, scale and gate
    of each branch from SiLU → Linear(d, 6d) of the conditioning c (B, d)."""

    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6), Mlp(dim, dim * mlp_ratio, approximate='tanh')
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate1.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """(B, N, d) -> (B, N, p²·2C): modulated LayerNorm (SiLU → Linear(d, 2d) shift and scale), Linear."""

    def __init__(self, dim, outputs):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, outputs)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiffusionTransformer(nn.Module):
    """facebookresearch/DiT's DiT (its names) with learned σ and the fixed sin-cos pos_embed, as
    lib/models/dit.ts computes it: x (B, C, H, W), t (B), y (B) -> (B, 2C, H, W), ε̂ then the
    variance interpolation v."""

    def __init__(self, side, channels, classes, depth, dim, heads, patch):
        super().__init__()
        self.patch, self.grid = patch, side // patch
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Conv2d(channels, dim, patch, stride=patch)   # weight (d, C, p, p)
        self.t_embedder = TimestepEmbedder(dim)
        self.y_embedder = LabelEmbedder(classes, dim)
        self.register_buffer('pos_embed', sincos_position_table(self.grid, dim))   # fixed: not a parameter
        self.blocks = nn.ModuleList([DiTBlock(dim, heads) for _ in range(depth)])
        self.final_layer = FinalLayer(dim, patch * patch * 2 * channels)
        # DiT's initialize_weights: xavier-uniform Linears (the patch embedding on its flattened
        # view), zero biases; label table and timestep MLP weights N(0, 0.02); every adaLN Linear
        # and the final Linear zero, so each block starts as the identity and the output as 0.
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for m in [b.adaLN_modulation[1] for b in self.blocks] + [self.final_layer.adaLN_modulation[1], self.final_layer.linear]:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x, t, y):
        B, C, g, p = x.shape[0], 2 * x.shape[1], self.grid, self.patch
        h = self.x_embedder.proj(x).flatten(2).transpose(1, 2) + self.pos_embed   # (B, N, d)
        c = self.t_embedder(t) + self.y_embedder(y)                               # (B, d)
        for block in self.blocks:
            h = block(h, c)
        out = self.final_layer(h, c).reshape(B, g, g, p, p, C)   # each token's values in (row, col, channel) order
        return torch.einsum('nhwpqc->nchpwq', out).reshape(B, C, g * p, g * p)   # unpatchify


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """guided-diffusion's: log P(x in its bin) under N(mean, e^{2·log_scale}), x in [−1, 1] from 8
    bits (bins ±1/255, open-ended beyond ±0.999), probabilities clamped at 1e-12 before the log."""
    centered, inv_std = x - mean, torch.exp(-log_scale)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


class Diffusion:
    """guided-diffusion's GaussianDiffusion as DiT configures it (lib/diffusion/schedule.ts): linear
    β from 1e-4 to 0.02 over T steps, ε prediction with the learned-range variance
    (log σ² = f·log β_t + (1 − f)·log β̃_t, f = (v + 1)/2). The schedule is float64 on the host;
    a step looks its values up there and uploads them as f32, as guided-diffusion does."""

    def __init__(self, timesteps=TIMESTEPS):
        self.timesteps = timesteps
        betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        posterior_variance = betas * (1 - prev) / (1 - alphas_cumprod)
        self.log_betas = betas.log()
        self.sqrt_alphas_cumprod, self.sqrt_one_minus_alphas_cumprod = alphas_cumprod.sqrt(), (1 - alphas_cumprod).sqrt()
        self.sqrt_recip_alphas_cumprod, self.sqrt_recipm1_alphas_cumprod = (1 / alphas_cumprod).sqrt(), (1 / alphas_cumprod - 1).sqrt()
        # β̃₀ = 0: its log is clipped to log β̃₁
        self.posterior_log_variance_clipped = torch.cat([posterior_variance[1:2], posterior_variance[1:]]).log()
        self.posterior_mean_coef1 = betas * prev.sqrt() / (1 - alphas_cumprod)                  # of x₀
        self.posterior_mean_coef2 = (1 - prev) * (1 - betas).sqrt() / (1 - alphas_cumprod)      # of x_t

    def training_loss(self, model, x0, labels):
        """One step's hybrid loss (guided-diffusion's training_losses, LossType.MSE, learned range):
        MSE(ε̂, ε) + L_vb, both means over every element; L_vb in bits sees ε̂ detached, so it trains
        only v: KL(q(x_{t−1} | x_t, x₀) ‖ p(x_{t−1} | x_t)) for t > 0, −log p(x₀ | x₁) at t = 0."""
        B, C = x0.shape[:2]
        t = torch.randint(self.timesteps, (B,))   # on the host, as guided-diffusion's UniformSampler

        def at(values):   # (B, 1, 1, 1) f32 on x0's device: each sample's value at its t
            return values[t].float().to(x0.device).view(B, 1, 1, 1)

        noise = torch.randn_like(x0)
        xt = at(self.sqrt_alphas_cumprod) * x0 + at(self.sqrt_one_minus_alphas_cumprod) * noise
        eps, v = model(xt, t.to(x0.device), labels).float().split(C, dim=1)
        mse = ((noise - eps) ** 2).mean()
        pred_x0 = at(self.sqrt_recip_alphas_cumprod) * xt - at(self.sqrt_recipm1_alphas_cumprod) * eps.detach()
        model_mean = at(self.posterior_mean_coef1) * pred_x0 + at(self.posterior_mean_coef2) * xt
        true_mean = at(self.posterior_mean_coef1) * x0 + at(self.posterior_mean_coef2) * xt
        true_log_var = at(self.posterior_log_variance_clipped)
        frac = (v + 1) / 2
        model_log_var = frac * at(self.log_betas) + (1 - frac) * true_log_var
        # normal_kl(true_mean, true_log_var, model_mean, model_log_var), nats
        kl = 0.5 * (-1.0 + model_log_var - true_log_var + torch.exp(true_log_var - model_log_var)
                    + (true_mean - model_mean) ** 2 * torch.exp(-model_log_var))
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var)
        first = (t == 0).to(x0.device).view(B, 1, 1, 1)
        return mse + torch.where(first, nll, kl).mean() / math.log(2.0)

    def sample_step(self, model, x, labels, null_label):
        """One ancestral DDPM step x_t -> x_{t−1} with classifier-free guidance (guided-diffusion's
        p_sample, DiT's forward_with_cfg): the model on [x; x] with labels [y; null], ε = ε_u + s·(ε_c − ε_u)
        on the noise channels, v from the conditional half, x̂₀ clipped to [−1, 1],
        x_{t−1} = μ̃(x̂₀, x_t) + exp(½·log σ²)·z. t is drawn in [1, T): a step that adds noise, as every
        step of a chain but its last."""
        B, C = x.shape[:2]
        t = random.randrange(1, self.timesteps)
        steps = torch.full((2 * B,), t, device=x.device)
        out = model(torch.cat([x, x]), steps, torch.cat([labels, torch.full_like(labels, null_label)])).float()
        eps_cond, eps_uncond = out[:B, :C], out[B:, :C]
        eps = eps_uncond + GUIDANCE * (eps_cond - eps_uncond)
        pred_x0 = (float(self.sqrt_recip_alphas_cumprod[t]) * x - float(self.sqrt_recipm1_alphas_cumprod[t]) * eps).clamp(-1, 1)
        mean = float(self.posterior_mean_coef1[t]) * pred_x0 + float(self.posterior_mean_coef2[t]) * x
        frac = (out[:B, C:] + 1) / 2
        log_var = frac * float(self.log_betas[t]) + (1 - frac) * float(self.posterior_log_variance_clipped[t])
        return mean + torch.exp(0.5 * log_var) * torch.randn_like(x)


def adamw(model, device, task='classify', batch=None):
    """AdamW in two groups: no decay on 1-D parameters, cls_token, pos_embed (SPEC §1, classify,
    lr 1e-3) or on 1-D parameters and biases only (SPEC §3, mae, lr = blr·batch/256 as ours); for
    dit one group without decay (SPEC §4: DiT's lr 1e-4, betas (0.9, 0.999), weight decay 0)."""
    if task == 'dit':
        groups, options = [{'params': list(model.parameters()), 'weight_decay': 0.0}], dict(lr=1e-4, betas=(0.9, 0.999))
    else:
        names = ('cls_token', 'pos_embed') if task == 'classify' else ()
        exempt = {n for n, p in model.named_parameters() if p.ndim <= 1 or n.endswith('.bias') or n in names}
        groups = [{'params': [p for n, p in model.named_parameters() if n not in exempt], 'weight_decay': 0.05},
                  {'params': [p for n, p in model.named_parameters() if n in exempt], 'weight_decay': 0.0}]
        options = dict(lr=1e-3 if task == 'classify' else MAE_BLR * batch / 256, betas=(0.9, 0.95))
    if device.type == 'cuda' and 'fused' in inspect.signature(torch.optim.AdamW).parameters:
        return torch.optim.AdamW(groups, fused=True, **options)
    return torch.optim.AdamW(groups, **options)


def parse_decoder(name):
    """'d8w512h16' -> dict(depth=8, dim=512, heads=16), as bench/train.ts parseDecoderName."""
    m = DECODER_NAME.fullmatch(name)
    depth, dim, heads = (int(g) for g in m.groups()) if m else (0, 0, 0)
    if not m or min(depth, dim, heads) < 1 or dim % heads:
        raise ValueError(f'--decoder: must be d<depth>w<width>h<heads> with positive sizes and heads dividing width '
                         f'(e.g. d8w512h16), got "{name}"')
    return dict(depth=depth, dim=dim, heads=heads)


def default_decoder(config):
    """pretrain.ts decoderSize: MAE's d8w512h16 for a preset encoder, else 2 blocks of the encoder's width and heads."""
    preset = any(all(PRESETS[f'pit-{s}'][k] == config[k] for k in ('depth', 'dim', 'heads')) for s in SIZES)
    return dict(MAE_DECODER) if preset else dict(depth=2, dim=config['dim'], heads=config['heads'])


def decoder_name(decoder):
    return 'd{depth}w{dim}h{heads}'.format(**decoder)


def build(name, config, task, decoder, side, channels, classes, tokens):
    """The model of one case, its parameter count checked against the formula ours uses."""
    if task == 'classify':
        model = VisionTransformer(side, channels, classes, **config)
        expected = parameter_count(config['depth'], config['dim'], config['patch'], channels, tokens, classes)
        what = f'{classes} classes'
    elif task in DIT_TASKS:
        model = DiffusionTransformer(side, channels, classes, **config)
        expected = dit_parameter_count(config['depth'], config['dim'], config['patch'], channels, classes)
        what = f'{classes} classes and the null class, learned sigma'
    else:
        model = MaskedAutoencoder(side, channels, **config, decoder_depth=decoder['depth'], decoder_dim=decoder['dim'],
                                  decoder_heads=decoder['heads'], mask_ratio=MAE_MASK_RATIO)
        expected = mae_parameter_count(config['depth'], config['dim'], config['patch'], channels, tokens, decoder['depth'], decoder['dim'])
        what = f'mae, decoder {decoder_name(decoder)}'
    count = sum(p.numel() for p in model.parameters())
    assert count == expected, f'{name} {what}: {count} parameters, the formula says {expected}'
    note(f'{name} at {side}x{side}x{channels}, {what}: {count:,} parameters')
    return model


def run_shape(name, config, task, decoder, side, batch, device, args, environment):
    """Measures and emits one (model, task, decoder, side, batch); returns 'ok', 'oom' or 'failed'."""
    # As `pit bench train`: 28 is MNIST-like; the scaling study (as `pit study scaling`) is 3, 100 throughout.
    channels, classes = (1, 10) if side == 28 and args.kind == 'train' else (3, 100)
    tokens = (side // config['patch']) ** 2
    shape = {'batch': batch, 'side': side, 'channels': channels, 'tokens': tokens}
    if task == 'mae':   # the tokens the encoder sees, without cls: int(N·(1 − r)), as ours
        shape['visibleTokens'] = int(tokens * (1 - MAE_MASK_RATIO))
    impl = 'torch-compile' if args.compile else 'torch-eager'
    model = build(name, config, task, decoder, side, channels, classes, tokens).to(device)
    forward = model
    if args.compile:
        importlib.import_module('torch._dynamo').reset()   # a fresh model per shape: stay under the recompile limit
        forward = torch.compile(model)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)
    diffusion = Diffusion() if task in DIT_TASKS else None

    if task == 'dit-sample':
        model.eval()   # no label dropout

        def step(data):   # x_t and the labels of the images being drawn
            images, labels = data
            with torch.inference_mode(), autocast:
                diffusion.sample_step(forward, images, labels, classes)
    else:
        optimizer = adamw(model, device, task, batch)

        def step(data):
            images, labels = data
            with autocast:
                if task == 'classify':
                    loss = F.cross_entropy(forward(images).float(), labels, label_smoothing=0.1)
                elif task == 'mae':
                    loss = forward(images).float()
                else:
                    loss = diffusion.training_loss(forward, images, labels)
            loss.backward()
            if task == 'classify':   # our MAE and DiT recipes do not clip (clipGrad 0, as MAE's and DiT's)
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    image_bytes = batch * channels * side * side * 4
    sets = [(torch.randn(batch, channels, side, side, device=device), torch.randint(classes, (batch,), device=device))
            for _ in range(rotation_count(image_bytes, device, args.rotate))]
    what = name + (f' mae {decoder_name(decoder)}' if task == 'mae' else f' {task}' if task in DIT_TASKS else '')
    try:
        for i in range(args.warmup):   # compiles, when compiling
            step(sets[i % len(sets)])
        if device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        ms, repeats = time_calls(step, sets, device, warmup=0, budget_s=args.budget)
    except Exception as error:   # OOM, or a torch.compile failure: note it and go on
        if not (is_out_of_memory(error) or args.compile):
            raise
        oom = is_out_of_memory(error)
        reason = 'out of memory' if oom else f'{type(error).__name__}: {(str(error).strip().splitlines() or [""])[0][:160]}'
        note(f'{what} {impl} skipped at {shape}: {reason}')
        return 'oom' if oom else 'failed'
    peak = torch.cuda.max_memory_allocated(device) if device.type == 'cuda' else None
    sampling = task == 'dit-sample'
    formula = f'batch / t_step (one DDPM step with guidance {GUIDANCE}: the DiT on 2·batch)' if sampling else 'batch / t_step'
    emit(result(args.kind, 'sample_step' if sampling else 'train_step', impl, device, 'bf16' if args.amp else 'f32', shape, ms, repeats,
                batch / (ms / 1e3), 'images/s', formula, environment, model=name, task=task,
                decoder=decoder_name(decoder) if decoder else None, peakBytes=peak), args.out)
    return 'ok'


MODEL_NAME = re.compile(r'(pit|vit)-(?:([tsbl])|d([1-9]\d*)w([1-9]\d*)h([1-9]\d*))(?:/([1-9]\d*))?')


def parse_model_name(model):
    """The grammar of lib/models/names.ts: pit-<size> (patch 1) or vit-<size>/<patch>, <size> one of
    t, s, b, l or d<depth>w<width>h<heads>, e.g. pit-t, vit-s/2, pit-d4w64h4."""
    m = MODEL_NAME.fullmatch(model)
    family = m and m.group(1)
    if not m or (family == 'pit' and m.group(6) not in (None, '1')) or (family == 'vit' and m.group(6) is None):
        raise ValueError(f'--models: "{model}" is not a model name: pit-<size> or vit-<size>/<patch>, <size> one of '
                         't, s, b, l or d<depth>w<width>h<heads> (e.g. pit-t, vit-s/2, pit-d4w64h4)')
    size = m.group(2)
    base = {k: PRESETS[f'pit-{size}'][k] for k in ('depth', 'dim', 'heads')} if size else \
        dict(depth=int(m.group(3)), dim=int(m.group(4)), heads=int(m.group(5)))
    return {**base, 'patch': int(m.group(6) or 1)}


DIT_NAME = re.compile(r'dit-(?:(s|b|l|xl)|d([1-9]\d*)w([1-9]\d*)h([1-9]\d*))/([1-9]\d*)')


def parse_dit_name(model):
    """lib/models/names.ts parseDitName: dit-<size>/<patch>, <size> one of s, b, l, xl (DiT's sizes)
    or d<depth>w<width>h<heads>, e.g. dit-xl/2, dit-l/1, dit-d4w64h4/1."""
    m = DIT_NAME.fullmatch(model)
    if not m:
        raise ValueError(f'--models: "{model}" is not a DiT name: dit-<size>/<patch>, <size> one of s, b, l, xl or '
                         'd<depth>w<width>h<heads> (e.g. dit-xl/2, dit-l/1, dit-d4w64h4/1)')
    depth, dim, heads = DIT_SIZES[m.group(1)] if m.group(1) else (int(g) for g in m.group(2, 3, 4))
    return dict(depth=depth, dim=dim, heads=heads, patch=int(m.group(5)))


def dit_model_name(config):
    """names.ts ditModelName: the DiT of a config (any model's, as bench/train.ts benchDitName)."""
    sizes = (config['depth'], config['dim'], config['heads'])
    size = next((s for s, v in DIT_SIZES.items() if v == sizes), 'd{depth}w{dim}h{heads}'.format(**config))
    return f'dit-{size}/{config["patch"]}'


def model_name(config):
    """The name of a config, as lib/models/names.ts writes it."""
    size = next((s for s in 'tsbl' if all(PRESETS[f'pit-{s}'][k] == config[k] for k in ('depth', 'dim', 'heads'))),
                'd{depth}w{dim}h{heads}'.format(**config))
    return f'pit-{size}' if config['patch'] == 1 else f'vit-{size}/{config["patch"]}'


def model_config(model, args):
    """(name, config) for a model name (a DiT's or a ViT's) with the --depth/--dim/--heads/--patch
    overrides; the name is the one of the resulting config, as ours."""
    dit = model.startswith('dit-')
    config = {**(parse_dit_name(model) if dit else parse_model_name(model)),
              **{k: getattr(args, k) for k in SHAPE_KEYS if getattr(args, k)}}
    return (dit_model_name if dit else model_name)(config), config


def main():
    p = base_parser('PyTorch peer benchmark: ViT / PiT training steps (classification or MAE pre-training) and DiT '
                    'diffusion training and sampling steps, images/s.', 3.0, ('--steps-budget', '--budget'))
    p.add_argument('--models', type=str_list, help='model names: pit-<size> or vit-<size>/<patch>, <size> one of t, s, b, l '
                   'or d<depth>w<width>h<heads> (default pit-t,vit-t/2 on cpu; pit-t,pit-s,pit-b,vit-t/2 on cuda); for mae, the '
                   'encoders; for dit and dit-sample also dit-<size>/<patch>, <size> one of s, b, l, xl or d<depth>w<width>h<heads> '
                   '(a pit-/vit- name: the DiT of its depth, width, heads and patch)')
    p.add_argument('--task', type=str_list, default=['classify'], help='classify, mae (MAE pre-training: the encoder on '
                   'the kept 25%% of the tokens, then the decoder on all), dit (a DiT diffusion training step) and/or dit-sample '
                   '(a DDPM sampling step with guidance 1.5), each timed for every model and side (default classify)')
    p.add_argument('--decoder', type=str_list, help='MAE decoder(s), d<depth>w<width>h<heads> each (default, as ours: MAE\'s '
                   'd8w512h16 for the presets t, s, b, l; 2 blocks of the encoder\'s width and heads for d…w…h… encoders)')
    for key in SHAPE_KEYS:
        p.add_argument(f'--{key}', type=int, help=f'override every model\'s {key} (it is then named by its sizes)')
    p.add_argument('--sides', type=int_list, help='image sides; 28: 1 channel, 10 classes; others 3, 100 (default 28,32 on cpu; 28,32,64 on cuda)')
    p.add_argument('--batch', help='batch: one for all sides, one per side, or "auto": the largest power of two with '
                   'batch*tokens <= 2^18, halved on out-of-memory (default 8 on cpu, auto on cuda)')
    p.add_argument('--amp', action='store_true', default=None, help='bf16 autocast (default on cuda)')
    p.add_argument('--no-amp', dest='amp', action='store_false', help='f32 throughout')
    p.add_argument('--compile', action='store_true', help='torch.compile the model (impl torch-compile)')
    p.add_argument('--kind', choices=['train', 'scaling'], default='train')
    args = p.parse_args()
    device = setup(args)
    cuda = device.type == 'cuda'
    args.amp = cuda if args.amp is None else args.amp
    models = args.models or (['pit-t', 'pit-s', 'pit-b', 'vit-t/2'] if cuda else ['pit-t', 'vit-t/2'])
    sides = args.sides or ([28, 32, 64] if cuda else [28, 32])
    batches = args.batch or ('auto' if cuda else '8')
    batches = ['auto'] * len(sides) if batches == 'auto' else int_list(batches)
    batches = batches * len(sides) if len(batches) == 1 else batches
    if len(batches) != len(sides):
        p.error(f'--batch: give one batch, one per side ({len(sides)}) or "auto"; got {args.batch}')
    bad = [t for t in args.task if t not in ('classify', 'mae') + DIT_TASKS]
    if bad or not args.task:
        p.error(f'--task: classify, mae, dit and/or dit-sample (comma-separated), got {",".join(args.task)}')
    if any(m.startswith('dit-') for m in models) and any(t not in DIT_TASKS for t in args.task):
        p.error('--models: a DiT (dit-…) is timed with --task dit or dit-sample only')
    if args.decoder and 'mae' not in args.task:
        p.error('--decoder is for --task mae')
    try:
        configs = [model_config(m, args) for m in models]
        decoders = [parse_decoder(d) for d in args.decoder or []]
    except ValueError as error:
        p.error(str(error))
    if any(t in DIT_TASKS for t in args.task) and any(config['dim'] % 4 for _, config in configs):
        p.error('--task dit, dit-sample: the sin-cos position table needs a width divisible by 4')
    if args.compile and not hasattr(torch, 'compile'):
        note(f'torch {torch.__version__} has no torch.compile; nothing to run with --compile')
        return
    environment = env(device)
    for name, config in configs:
        # As `pit bench train`: per model and side, each task in the order given, mae with each decoder.
        cases = [(t, d) for t in args.task for d in ((decoders or [default_decoder(config)]) if t == 'mae' else [None])]
        for side, side_batch in zip(sides, batches):
            if side % config['patch'] or config['dim'] % config['heads']:
                note(f'{name} skipped at side {side}: patch must divide the side and heads the width')
                continue
            for task, decoder in cases:
                auto = side_batch == 'auto'   # as `pit bench train`: the largest power of two with batch * tokens <= 2^18
                batch = 2 ** int(math.log2(max(1, 2**18 // (side // config['patch']) ** 2))) if auto else side_batch
                case = dit_model_name(config) if task in DIT_TASKS else name
                while run_shape(case, config, task, decoder, side, batch, device, args, environment) == 'oom' and auto and batch > 1:
                    gc.collect()
                    torch.cuda.empty_cache()
                    batch //= 2
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()

if __name__ == '__main__':
    main()

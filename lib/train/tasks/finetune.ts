// Fine-tuning a classifier from a pre-trained encoder (SPEC §3): the encoder tensors of an MAE
// (or of another classifier) loaded into a freshly built VisionTransformer, and layer-wise lr
// decay. The classification task (classify.ts) uses both through its `init` and `layerDecay`
// recipe fields.
import { tensor, tidy } from '../../tensor.js';
import type { VisionTransformer } from '../../models/vit.js';
import { readCheckpointWeights } from '../checkpoint.js';
import { resolveCheckpoint } from '../run-checkpoints.js';

/** The encoder config fields whose values fix the encoder's tensor names and shapes. */
const ENCODER_FIELDS = ['depth', 'dim', 'heads', 'patch', 'channels', 'mlpRatio', 'posEmbed'] as const;

/** Layer 0 of the lr decay: the patch embedding, cls token and position table. */
const isEmbedding = (name: string) => name.startsWith('patch_embed.') || name === 'cls_token' || name === 'pos_embed';
/** The trunk's names (timm): the embeddings and blocks.N. */
const isTrunkName = (name: string) => isEmbedding(name) || /^blocks\.\d+\./.test(name);

/** What loadPretrainedEncoder did. */
export interface EncoderInit {
  /** The checkpoint folder the weights came from. */
  checkpoint: string;
  /** 'mae' or 'classifier': what the checkpoint holds. */
  source: 'mae' | 'classifier';
  /** The classifier's names given the checkpoint's values, bit for bit. */
  loaded: string[];
  /** The checkpoint's names not used: the decoder, mask token, head, a norm the classifier has no use for. */
  dropped: string[];
  /** The classifier's names left at their fresh init (head, fc_norm or norm). */
  fresh: string[];
}

/** 'mae' or 'classifier' by the checkpoint's model config; a clear error for anything else. */
function sourceKind(dir: string, config: unknown): 'mae' | 'classifier' {
  const c = config as Record<string, unknown> | null;
  if (c && typeof c === 'object') {
    if ('decoderDim' in c && 'maskRatio' in c) return 'mae';
    if ('classes' in c && 'pool' in c) return 'classifier';
  }
  throw new RangeError(`init: ${dir} is not a pre-trained MAE or classifier checkpoint (its metadata's model config has neither an MAE decoder nor a classification head)`);
}

/** The head's init std when fine-tuning (SPEC §3, MAE's trunc_normal_(head.weight, std=2e-5)). */
export const FINETUNE_HEAD_STD = 2e-5;

/**
 * Loads the encoder of the checkpoint (or run folder's latest) at `from` into `model`, whose
 * other parameters keep the init they were built with (build it with headStd
 * FINETUNE_HEAD_STD). Taken: patch_embed, cls_token,
 * pos_embed, blocks.N and, when the classifier pools by 'cls', the encoder's final `norm`
 * (with 'avg' pooling the classifier trains a fresh `fc_norm` instead). The checkpoint's
 * checksum is verified, its encoder config must equal the classifier's (the field that differs
 * is named) and every tensor's shape must fit (the tensor and both shapes are named), all
 * before any weight changes.
 */
export function loadPretrainedEncoder(model: VisionTransformer, from: string): EncoderInit {
  const checkpoint = resolveCheckpoint(from);
  const weights = readCheckpointWeights(checkpoint);
  const config = weights.metadata.config as Record<string, unknown>;
  const source = sourceKind(checkpoint, config);
  for (const key of ENCODER_FIELDS)
    if (JSON.stringify(config[key]) !== JSON.stringify(model.config[key]))
      throw new RangeError(`init: ${checkpoint}: the pre-trained encoder's '${key}' is ${JSON.stringify(config[key])} but the classifier's is ${JSON.stringify(model.config[key])}; build the classifier with the encoder's ${key}`);
  const wanted = (name: string) => isTrunkName(name) || (model.config.pool === 'cls' && name.startsWith('norm.'));
  const own = new Map(model.namedParameters());
  const loaded = [...own.keys()].filter((n) => wanted(n) && weights.tensors.has(n));
  const missing = [...own.keys()].filter((n) => isTrunkName(n) && !weights.tensors.has(n));
  if (missing.length) throw new RangeError(`init: ${checkpoint} has no ${missing.map((n) => `"${n}"`).join(', ')}, which the classifier's encoder needs`);
  for (const name of loaded) {
    const have = weights.tensors.get(name)!.shape, need = own.get(name)!.shape;
    if (have.join() !== need.join())
      throw new RangeError(`init: ${checkpoint}: "${name}" has shape [${have.join(', ')}] in the checkpoint but [${need.join(', ')}] in the classifier` +
        (name === 'pos_embed' ? ' (a learned position table fixes the image size and patch: fine-tune at the size it was trained on)' : ''));
  }
  const given = new Set(loaded);
  tidy(() => {
    model.loadStateDict(new Map(loaded.map((n) => {
      const e = weights.tensors.get(n)!;
      return [n, tensor(e.data, e.shape)];
    })), { strict: false });
  });
  return {
    checkpoint, source, loaded,
    dropped: [...weights.tensors.keys()].filter((n) => !given.has(n)),
    fresh: [...own.keys()].filter((n) => !given.has(n)),
  };
}

/**
 * A parameter's layer id for layer-wise lr decay (SPEC §3, MAE's param_groups_lrd): 0 for the
 * patch embedding, cls token and position table, k + 1 for block k, depth + 1 for everything
 * after the blocks (norm, fc_norm, head).
 */
export function layerId(name: string, depth: number): number {
  if (isEmbedding(name)) return 0;
  const block = /^blocks\.(\d+)\./.exec(name);
  return block ? Number(block[1]) + 1 : depth + 1;
}

/** lr multiplier of each parameter: decay^(n − id) with n = depth + 1 (the head keeps the full lr). */
export const layerDecayScale = (depth: number, decay: number) => (name: string): number => decay ** (depth + 1 - layerId(name, depth));

/**
 * What a model family brings when a checkpoint comes without its side files: the vocabularies
 * shipped in the package's assets/ folder (OpenAI's BPE, Chinese-CLIP's vocab.txt) and the standard
 * preprocessor_config.json of each family. Used by loadModel (source.ts) and clipkit convert.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipkitError } from '../errors';

export const BPE_GZ = 'bpe_simple_vocab_16e6.txt.gz';

/** The package's assets/ folder: two levels above this file in the sources, three in dist/. */
export function assetsDir(): string {
  for (const up of [['..', '..'], ['..', '..', '..']]) {
    const dir = path.join(__dirname, ...up, 'assets');
    if (fs.existsSync(path.join(dir, BPE_GZ))) return dir;
  }
  throw new ClipkitError('E_IO', `clipkit's assets/ folder (with ${BPE_GZ} and vocab.txt) is missing from the installed package near ${__dirname}`);
}

/**
 * OpenAI CLIP's per-channel normalisation (RGB): the standard preprocessing of every family here,
 * and the default of transformers' CLIPImageProcessor and ChineseCLIPImageProcessor.
 */
export const OPENAI_CLIP_MEAN: readonly number[] = Object.freeze([0.48145466, 0.4578275, 0.40821073]);
export const OPENAI_CLIP_STD: readonly number[] = Object.freeze([0.26862954, 0.26130258, 0.27577711]);

/**
 * preprocessor_config.json (keys sorted, as transformers writes them). OpenAI CLIP (and EasyNLP,
 * whose pipeline is OpenAI's): resize the shorter side to the image size, centre crop. Chinese-CLIP:
 * resize to image size × image size, so the crop of the same size changes nothing.
 */
export function defaultPreprocessorConfig(modelType: string, s: number): Record<string, unknown> {
  const chinese = modelType === 'chinese_clip';
  return {
    crop_size: { height: s, width: s },
    do_center_crop: true,
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: OPENAI_CLIP_MEAN,
    image_processor_type: chinese ? 'ChineseCLIPImageProcessor' : 'CLIPImageProcessor',
    image_std: OPENAI_CLIP_STD,
    resample: 3, // PIL bicubic
    rescale_factor: 1 / 255,
    size: chinese ? { height: s, width: s } : { shortest_edge: s },
  };
}

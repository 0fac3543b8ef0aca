/**
 * clipkit convert IN OUT_DIR: an original PyTorch checkpoint (OpenAI CLIP / open_clip, Chinese-CLIP,
 * EasyNLP) or a Hugging Face .safetensors / .bin into a model folder that clipkit and transformers
 * load (loading/convert.ts does the work). Prints what it found and wrote, or one JSON line with --json.
 */
import { Command, Option } from 'commander';
import { CONVERT_DTYPES, convertCheckpoint, ConvertDType, ConvertResult } from '../loading/convert';
import { table } from './common';

interface ConvertCliOptions {
  model?: string;
  text?: string;
  hiddenAct?: 'quick_gelu' | 'gelu';
  dtype: ConvertDType;
  tokenizer?: string;
  force?: boolean;
  json?: boolean;
}

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('turn an original CLIP checkpoint into a Hugging Face model folder (config.json, model.safetensors, tokenizer and preprocessor files)')
    .argument('<in>', 'checkpoint: .pt / .pth / .bin (torch.save or TorchScript, as OpenAI, open_clip, Chinese-CLIP and EasyNLP ship them) or .safetensors')
    .argument('<out_dir>', 'folder to write; must be absent or empty unless --force')
    .option('--model <name>', 'model name giving the heads, checked against the shapes: ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336, ViT-H-14')
    .option('--text <name>', 'Chinese-CLIP text tower: RoBERTa-wwm-ext-base-chinese, RoBERTa-wwm-ext-large-chinese, RBT3-chinese')
    .addOption(new Option('--hidden-act <act>', 'vision (and OpenAI text) activation; gelu for open_clip models trained by LAION').choices(['quick_gelu', 'gelu']))
    .addOption(new Option('--dtype <dtype>', 'dtype of the written weights (keep: as stored)').choices([...CONVERT_DTYPES]).default('keep'))
    .option('--tokenizer <dir>', 'take the vocabulary from this folder (vocab.txt, vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz) instead of the bundled one')
    .option('--force', 'write into a folder that already holds files')
    .option('--json', 'print one JSON object instead of the summary')
    .action((input: string, outDir: string, o: ConvertCliOptions) => {
      const r = convertCheckpoint(input, outDir, { model: o.model, text: o.text, hiddenAct: o.hiddenAct, dtype: o.dtype, tokenizer: o.tokenizer, force: o.force });
      if (o.json) {
        const { config: _config, ...rest } = r;
        console.log(JSON.stringify({ ...rest, geometry: geometry(r) }));
      } else console.log(summary(r));
    });
}

const FORMATS: Record<ConvertResult['format'], string> = {
  zip: 'torch.save zip',
  legacy: 'torch.save legacy',
  torchscript: 'TorchScript archive',
  safetensors: 'safetensors',
};
const LAYOUTS: Record<ConvertResult['layout'], string> = {
  openai: 'OpenAI CLIP / open_clip names',
  chinese_clip: 'Chinese-CLIP names',
  easynlp: 'EasyNLP CLIPApp names',
  hf: 'Hugging Face names',
};

/** The config's geometry in a few numbers per tower. */
function geometry(r: ConvertResult) {
  const v = r.config.vision_config, t = r.config.text_config;
  return {
    vision: { image: v.image_size, patch: v.patch_size, width: v.hidden_size, layers: v.num_hidden_layers, heads: v.num_attention_heads, mlp: v.intermediate_size, act: v.hidden_act },
    text: { vocab: t.vocab_size, positions: t.max_position_embeddings, width: t.hidden_size, layers: t.num_hidden_layers, heads: t.num_attention_heads, mlp: t.intermediate_size, act: t.hidden_act },
    projection: r.config.projection_dim,
  };
}

function summary(r: ConvertResult): string {
  const g = geometry(r);
  const tower = (x: typeof g.vision | typeof g.text) => `width ${x.width}, ${x.layers} layers, ${x.heads} heads, MLP ${x.mlp}, ${x.act}`;
  const skipped = r.skipped.length ? `${r.skipped.length} not written: ${r.skipped.slice(0, 4).join(', ')}${r.skipped.length > 4 ? ', …' : ''}` : 'every one written';
  const facts: [string, string][] = [
    ['checkpoint', `${FORMATS[r.format]}, ${LAYOUTS[r.layout]}, ${r.inputTensors} tensors (${skipped})`],
    ['model', `${r.architecture} (model_type ${r.modelType}), ${r.torchDType}, ${r.parameters.toLocaleString('en-US')} parameters in ${r.tensors} tensors`],
    ['vision', `image ${g.vision.image}, patch ${g.vision.patch}, ${tower(g.vision)}`],
    ['text', `vocab ${g.text.vocab}, ${g.text.positions} positions, ${tower(g.text)}`],
    ['projection', String(g.projection)],
  ];
  const keyWidth = Math.max(...facts.map(([k]) => k.length));
  const lines = [
    `${r.input} → ${r.outDir}`,
    ...facts.map(([k, v]) => `  ${k.padEnd(keyWidth)}  ${v}`),
    '',
    table(['file', 'bytes'], r.files.map((f) => [f.name, f.bytes.toLocaleString('en-US')])),
  ];
  if (!r.transformers)
    lines.push('', `Note: transformers has no class for model_type ${r.modelType} (EasyNLP's Chinese CLIP: text pooler, projection biases); this folder is for clipkit's loadModel.`);
  return lines.join('\n');
}

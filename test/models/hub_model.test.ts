/**
 * loadModel and the CLI with a hub id: a tiny model served by a local imitation of the hub is
 * fetched into a temporary hub cache, gives the same embeddings as the folder it came from, and
 * loads again from the cache with the server stopped.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../../src/models';
import { cliRun, IMAGES, modelFolder } from '../cli/fixture_model';
import { FakeHub } from '../io/fake_hub';
import { tempDir } from '../helpers';

const test = suite('models from a hub id');

test('loadModel(org/name) fetches into the cache, then works offline; so does the CLI', async () => {
  const folder = modelFolder('chinese_clip_tiny');
  const hub = await new FakeHub().start();
  try {
    hub.addRepo('org/cn-tiny', [['first', Object.fromEntries(readdirSync(folder).map((f) => [f, readFileSync(join(folder, f))]))]]);
    const cache = tempDir('clipkit-hubcache-');
    const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_TOKEN_PATH: join(cache, 'no-token') };
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const fromHub = await loadModel('org/cn-tiny');
      const local = await loadModel(folder);
      const texts = ['一只猫', '宝可梦'];
      assert.equal(await fromHub.encodeText(texts), await local.encodeText(texts));
      assert.ok(readdirSync(join(cache, 'models--org--cn-tiny', 'snapshots')).length === 1);

      const r = await cliRun(['classify', join(IMAGES, 'pokemon.jpeg'), '--labels', '猫,狗', '-m', 'org/cn-tiny', '--json'], { env });
      assert.is(r.status, 0, r.stderr);
      assert.is(JSON.parse(r.stdout).labels.length, 2);

      await hub.stop();
      const offline = await loadModel('org/cn-tiny', { offline: true });
      assert.equal(await offline.encodeText(texts), await local.encodeText(texts));
      const r2 = await cliRun(['classify', join(IMAGES, 'pokemon.jpeg'), '--labels', '猫,狗', '-m', 'org/cn-tiny', '--json'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
      assert.is(r2.status, 0, r2.stderr);
      const missing = await cliRun(['classify', join(IMAGES, 'pokemon.jpeg'), '--labels', '猫,狗', '-m', 'org/other', '--json'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
      assert.is(missing.status, 1);
      assert.match(missing.stderr, /not in the Hugging Face cache/, missing.stderr);
      assert.match(missing.stderr, /--model \.\/folder|loadModel\(/);
    } finally {
      for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
    }
  } finally {
    await hub.stop();
  }
});

test.run();

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fixEncoding, fixText } from '../../src/tokenizers/ftfy';
import { htmlUnescape } from '../../src/tokenizers/html_unescape';
import { oaCases, readOwnJson } from './fixtures';

const Ftfy = suite('ftfy fix_text');
const { cases } = oaCases();

Ftfy('changes exactly the 34 texts the reference changed', () => {
  const changed = cases.filter((c) => fixText(c.text) !== c.text).map((c) => c.id);
  const want = cases.filter((c) => c.ftfy_changed).map((c) => c.id);
  assert.equal(changed, want);
  assert.is(want.length, 34);
});

// cleaned_text = ftfy, html.unescape twice, whitespace collapse, strip, lower(): the part after ftfy
// is tested through cleanText in clip_bpe.test.ts; here ftfy alone must already agree.
for (const c of cases.filter((x) => x.ftfy_changed))
  Ftfy(`${c.id} ${JSON.stringify(c.text.slice(0, 30))}`, () => {
    const fixed = fixText(c.text);
    assert.is(fixed.replace(/\s+/gu, ' ').trim().toLowerCase(), c.cleaned_text);
  });

// ftfy's docstring examples, with the output 6.3.1 really gives ('…' is kept: the docstring says '...').
Ftfy('ftfy 6.3.1 documented examples', () => {
  assert.is(fixText('âœ” No problems'), '✔ No problems');
  assert.is(fixText('&macr;\\_(ã\x83\x84)_/&macr;'), '¯\\_(ツ)_/¯');
  assert.is(fixText('Broken text&hellip; it&#x2019;s ﬂubberiﬁc!'), "Broken text… it's flubberific!");
  assert.is(fixText('ＬＯＵＤ　ＮＯＩＳＥＳ'), 'LOUD NOISES');
  assert.is(fixEncoding('sÃ³'), 'só');
  assert.is(fixEncoding('voilÃ le travail'), 'voilà le travail');
  assert.is(fixEncoding('&ATILDE;&SUP3;'), '&ATILDE;&SUP3;');
});

Ftfy('HTML is left escaped once a line holds a "<"', () => {
  assert.is(fixText('a &amp; b'), 'a & b');
  assert.is(fixText('<b>a &amp; b</b>'), '<b>a &amp; b</b>');
  assert.is(fixText('<p>\n&amp;'), '<p>\n&amp;'); // stays off for later lines
});

const extra = readOwnJson<{ cases: { text: string; fixed: string }[] }>('ftfy_extra_cases.json').cases;
Ftfy(`${extra.length} seeded mojibake / entity / width strings match ftfy 6.3.1`, () => {
  const bad = extra.filter((c) => fixText(c.text) !== c.fixed);
  assert.is(bad.length, 0, bad.slice(0, 5).map((c) => `${JSON.stringify(c.text)}: got ${JSON.stringify(fixText(c.text))} want ${JSON.stringify(c.fixed)}`).join('\n'));
});

Ftfy('Python html.unescape rules', () => {
  assert.is(htmlUnescape('&amp &ampx &notit; &#0; &#x80; &#xD800; &#1114112; &#1; &constructor;'), '& &x ¬it; \ufffd € \ufffd \ufffd  &constructor;');
});

Ftfy('lone surrogates become U+FFFD', () => {
  assert.is(fixText('a\ud800b\udc00c'), 'a\ufffdb\ufffdc');
  assert.is(fixText('😀'), '😀');
});

Ftfy.run();

// @honcho-ai/sdk with auth on (run by tests/http_api/test_auth.py): the key comes from
// HONCHO_API_KEY (a workspace key); a key for another workspace is refused with Honcho's 401.
import assert from 'node:assert/strict';
import { AuthenticationError, Honcho } from '@honcho-ai/sdk';

const honcho = new Honcho({ maxRetries: 0 });
const alice = await honcho.peer('alice');
const session = await honcho.session('s1');
await session.addMessages([alice.message('I adopted a puppy named Biscuit')]);
assert.deepEqual((await session.messages()).items.map((m) => m.content),
  ['I adopted a puppy named Biscuit']);
const stream = await alice.chatStream('what is my dog called?');
assert.ok((await stream.getFinalResponse()).length > 0);

const stranger = new Honcho({ apiKey: process.env.OTHER_WORKSPACE_KEY, maxRetries: 0 });
await assert.rejects(stranger.peer('alice'), AuthenticationError);
await assert.rejects(honcho.workspaces(), AuthenticationError); // admin keys only
console.log('auth scenario passed');

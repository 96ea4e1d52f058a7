import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SentState } from '../../src/xds/sent-state.js';
import { ResourceCache } from '../../src/xds/resource-cache.js';
import { TypeUrl } from '../../src/translate/types.js';

const cache = new ResourceCache();
const cla = (name: string, ip: string) => cache.intern(TypeUrl.ClusterLoadAssignment, { name, body: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: ip, port_value: 80 } } } }] }] } });

describe('sent state shared with a base set', () => {
  const a1 = cla('a', '10.0.0.1');
  const b1 = cla('b', '10.0.0.2');
  const base = new Map([['a', a1], ['b', b1]]);

  it('adopts a base only when it holds exactly that set, then tracks differences', () => {
    const s = new SentState();
    s.set('a', a1);
    assert.equal(s.rebase(base), false, 'holds less than the base');
    s.set('b', b1);
    assert.equal(s.rebase(base), true);
    assert.equal(s.ownSize, 0);
    assert.equal(s.size, 2);
    const a2 = cla('a', '10.0.0.9');
    s.set('a', a2);
    s.delete('b');
    s.set('c', 'v-from-client');
    assert.equal(s.get('a'), a2);
    assert.equal(s.get('b'), undefined);
    assert.equal(s.has('b'), false);
    assert.equal(s.size, 2);
    assert.deepEqual([...s.keys()].sort(), ['a', 'c']);
    assert.equal(base.get('a'), a1, 'the shared base is never written');
    s.set('a', a1);
    assert.equal(s.ownSize, 2, 'setting a name back to the base value drops the difference');
  });
});

import { describeIntegration } from '@bucketsync/dev-databases/vitest';
import { MongoClient } from 'mongodb';
import { expect, it } from 'vitest';

describeIntegration('mongodb', 'MongoDB test server', (url) => {
  it('is reachable and is a replica set (change streams need one)', async () => {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
    await client.connect();
    try {
      const hello = await client.db('admin').command({ hello: 1 });
      expect(hello.setName).toBeTypeOf('string');
    } finally {
      await client.close();
    }
  });
});

/**
 * The SDK's side of the 100 MB TRANSFER test in a process of its own, so that its peak RSS is its own:
 * reconnects to the session, submits one unit that sends the file back, waits (the output is downloaded
 * before the wait returns) and prints `{ state, log, rssBeforeKb, peakRssKb }` as JSON.
 * Usage: tsx transfer-child.ts <endpoint> <sessionId> <token> <umgrId> <input> <outputTarget>
 */
import { Session, TRANSFER, UnitManager } from '../../client/index.ts';

const [endpoint, sid, token, umid, input, target] = process.argv.slice(2) as string[];
const session = await Session.reconnect(sid as string, {
  endpoint: endpoint as string,
  token: token as string,
});
const umgr = await UnitManager.attach(session, umid as string);
const rssBeforeKb = Math.round(process.memoryUsage().rss / 1024);
const unit = await umgr.submitUnits({
  executable: '/bin/sh',
  arguments: ['-c', 'mv data.bin data.out'],
  inputStaging: [{ source: input as string, target: 'data.bin', action: TRANSFER }],
  outputStaging: [{ source: 'data.out', target: target as string, action: TRANSFER }],
});
const state = await unit.wait({ timeout: 300 });
// maxRSS: the process's peak resident set (kilobytes), kept by the kernel.
const peakRssKb = process.resourceUsage().maxRSS;
process.stdout.write(`${JSON.stringify({ uid: unit.uid, state, log: unit.log, rssBeforeKb, peakRssKb })}\n`);
process.exit(0);

/**
 * The two transfer routes' work: `POST /sessions/{sid}/transfers` (the SDK: upload a unit's input before
 * submit, download its output after DONE) and `POST /agent/transfers` (the agent: download inputs of its
 * units, upload their outputs). Each answer is presigned URLs for exactly the objects the caller may
 * touch: a session's own uploads and its units' outputs; for an agent, only units bound to its pilot.
 */
import { randomUUID } from 'node:crypto';
import { BadParameter, PermissionDenied } from '../../core/errors.ts';
import type { StagingDirective } from '../../core/staging.ts';
import { inputKey, outputKey, parseOutputKey, sizeProblem, validParts } from '../../core/transfer.ts';
import type { PilotRecord, UnitRecord } from '../../store/index.ts';
import { str } from './http.ts';
import { store } from './store.ts';
import { abortUpload, completeUpload, downloadUrl, objectInfo, uploadPlan } from './transfers.ts';

type Body = Record<string, unknown>;

/** A Transfer directive of a unit, by direction and index, or a 400 saying why there is none. */
function transferDirective(unit: UnitRecord, list: 'inputStaging' | 'outputStaging', index: unknown) {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0)
    throw new BadParameter(`transfers.index: must be a directive index, got ${JSON.stringify(index)}`);
  const d: StagingDirective | undefined = unit.description[list]?.[index];
  if (d?.action !== 'Transfer')
    throw new BadParameter(`transfers.index: ${unit.uid}'s ${list}[${index}] is not a Transfer directive`);
  return d;
}

function checkedSize(body: Body): { size: number; sha256: string } {
  const why = sizeProblem(body.size, body.sha256, 'transfers');
  if (why) throw new BadParameter(why);
  return { size: body.size as number, sha256: body.sha256 as string };
}

/** Completes or aborts a multipart upload of `key` (already checked to be the caller's). */
async function finishMultipart(op: string, key: string, body: Body): Promise<Record<string, never>> {
  const uploadId = str(body, 'uploadId', 'transfers');
  if (op === 'abort') {
    await abortUpload(key, uploadId);
    return {};
  }
  const parts = body.parts;
  await completeUpload(
    key,
    uploadId,
    validParts(parts, Array.isArray(parts) ? parts.length : 0, 'transfers'),
  );
  return {};
}

/** The SDK's side (`op`: upload, complete, abort, download). */
export async function sessionTransfer(sessionId: string, body: Body): Promise<unknown> {
  const op = str(body, 'op', 'transfers');
  if (op === 'upload') return uploadPlan({ key: inputKey(sessionId, randomUUID()), ...checkedSize(body) });
  if (op === 'complete' || op === 'abort') {
    const key = str(body, 'key', 'transfers');
    if (!key.startsWith(`${sessionId}/in/`))
      throw new PermissionDenied(`transfers.key: not an upload of session ${sessionId}`, { obj: key });
    return finishMultipart(op, key, body);
  }
  if (op === 'download') {
    const [unit] = await store().getUnits(sessionId, [str(body, 'uid', 'transfers')]);
    const u = unit as UnitRecord;
    transferDirective(u, 'outputStaging', body.index);
    const key = outputKey(sessionId, u.uid, body.index as number);
    const info = await objectInfo(key, `${u.uid} outputStaging[${body.index}]`);
    return { ...info, ...(await downloadUrl(key)) };
  }
  throw new BadParameter(
    `transfers.op: must be upload, complete, abort or download, got ${JSON.stringify(op)}`,
  );
}

/** A unit of this pilot (bound to it), or 403. */
async function pilotUnit(pilot: PilotRecord, uid: string): Promise<UnitRecord> {
  const [unit] = await store().getUnits(pilot.sessionId, [uid]);
  if (unit?.pilot !== pilot.uid)
    throw new PermissionDenied(`unit ${uid} is not bound to pilot ${pilot.uid}`, { obj: uid });
  return unit;
}

/** The agent's side (`op`: download an input, upload an output, complete, abort). */
export async function agentTransfer(pilot: PilotRecord, body: Body): Promise<unknown> {
  const op = str(body, 'op', 'transfers');
  if (op === 'download') {
    const unit = await pilotUnit(pilot, str(body, 'uid', 'transfers'));
    const d = transferDirective(unit, 'inputStaging', body.index);
    const key = d.object?.key ?? '';
    const info = await objectInfo(key, `${unit.uid} inputStaging[${body.index}] ${d.source}`);
    return { ...info, ...(await downloadUrl(key)) };
  }
  if (op === 'upload') {
    const unit = await pilotUnit(pilot, str(body, 'uid', 'transfers'));
    transferDirective(unit, 'outputStaging', body.index);
    return uploadPlan({
      key: outputKey(pilot.sessionId, unit.uid, body.index as number),
      ...checkedSize(body),
    });
  }
  if (op === 'complete' || op === 'abort') {
    const key = str(body, 'key', 'transfers');
    const out = parseOutputKey(key, pilot.sessionId);
    if (!out) throw new PermissionDenied('transfers.key: not an output of this session', { obj: key });
    await pilotUnit(pilot, out.uid);
    return finishMultipart(op, key, body);
  }
  throw new BadParameter(
    `transfers.op: must be download, upload, complete or abort, got ${JSON.stringify(op)}`,
  );
}

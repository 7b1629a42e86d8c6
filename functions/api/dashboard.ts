/**
 * `GET /dashboard`: the web dashboard's page (functions/api/dashboard-page.ts). It carries no data and
 * needs no token; the page reads the session named in its URL fragment through the API with that
 * session's token, so it shows only what the token already opens.
 */
import { createHash } from 'node:crypto';
import { RawResponse } from '../lib/http.ts';
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE, dashboardHtml } from './dashboard-page.ts';

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

/**
 * Nothing but the page's own inline script and style runs, and it may talk only to this origin: a token in
 * the fragment cannot be sent anywhere else, and no injected markup could run.
 */
const CSP = [
  "default-src 'none'",
  `script-src ${sha256(DASHBOARD_SCRIPT)}`,
  `style-src ${sha256(DASHBOARD_STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

let page: string | undefined;

/** The dashboard page as the API answers it. */
export function dashboardResponse(): RawResponse {
  page ??= dashboardHtml();
  return new RawResponse({
    statusCode: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': CSP,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
    },
    body: page,
  });
}

/** Structured JSON logs (AWS Lambda Powertools), one logger per process; CloudWatch reads them as is. */
import { Logger } from '@aws-lambda-powertools/logger';

/** The handlers' logger. Level from POWERTOOLS_LOG_LEVEL (default INFO). */
export const logger = new Logger({ serviceName: 'sortie' });

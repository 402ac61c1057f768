import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Flywheel's search attributes: registered on the dev server at start, set by workflows, filterable in the UI. */
export const FlywheelKind = defineSearchAttributeKey('FlywheelKind', SearchAttributeType.KEYWORD);
export const FlywheelDataset = defineSearchAttributeKey('FlywheelDataset', SearchAttributeType.KEYWORD);
export const FlywheelRun = defineSearchAttributeKey('FlywheelRun', SearchAttributeType.KEYWORD);
export const FlywheelStage = defineSearchAttributeKey('FlywheelStage', SearchAttributeType.KEYWORD);
export const FlywheelStep = defineSearchAttributeKey('FlywheelStep', SearchAttributeType.INT);
export const FlywheelEpoch = defineSearchAttributeKey('FlywheelEpoch', SearchAttributeType.INT);
export const FlywheelValLoss = defineSearchAttributeKey('FlywheelValLoss', SearchAttributeType.DOUBLE);

export const FLYWHEEL_SEARCH_ATTRIBUTES = [
  FlywheelKind,
  FlywheelDataset,
  FlywheelRun,
  FlywheelStage,
  FlywheelStep,
  FlywheelEpoch,
  FlywheelValLoss,
] as const;

/** The `--search-attribute Name=Type` spelling of the dev server's command line. */
export function searchAttributeFlags(): string[] {
  const cliType: Record<string, string> = {
    KEYWORD: 'Keyword',
    TEXT: 'Text',
    INT: 'Int',
    DOUBLE: 'Double',
    BOOL: 'Bool',
    DATETIME: 'Datetime',
    KEYWORD_LIST: 'KeywordList',
  };
  return FLYWHEEL_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=${cliType[k.type]}`]);
}

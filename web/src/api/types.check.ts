/**
 * The hand-kept types in types.ts, checked against the hub's OpenAPI
 * schemas at type-check time: whatever the hub sends (the schema's type)
 * must be a value the app's type accepts. A field the hub renames, drops
 * or retypes fails `npm run typecheck` here.
 */

import type { AgentSessionEvent } from "../agents/activityLive";
import type { components } from "./openapi";
import type {
  Activity,
  Agent,
  AgentActivity,
  AgentSsh,
  CreateAgentResponse,
  PreviewLink,
  Profile,
  Project,
  TerminalInfo,
  Usage,
} from "./types";

type Schemas = components["schemas"];

/** `true` when every `Wire` value is an `App` value; a type error otherwise. */
type Accepts<App, Wire extends App> = Wire extends App ? true : never;

export type HandKeptTypesAcceptTheWire = [
  Accepts<Profile, Schemas["Profile"]>,
  Accepts<Project, Schemas["Project"]>,
  Accepts<TerminalInfo, Schemas["TerminalInfo"]>,
  Accepts<PreviewLink, Schemas["PreviewLink"]>,
  Accepts<Agent, Schemas["Agent"]>,
  Accepts<AgentSsh, Schemas["AgentSsh"]>,
  Accepts<CreateAgentResponse, Schemas["CreatedAgent"]>,
  Accepts<AgentActivity, Schemas["AgentActivity"]>,
  Accepts<Usage, Schemas["Usage"]>,
  Accepts<Activity, Schemas["Activity"]>,
  // The live feed's message: its `event`, and the session beside it.
  Accepts<AgentSessionEvent["event"], Schemas["AgentSessionMessage"]["event"]>,
  Accepts<AgentActivity, Omit<Schemas["AgentSessionMessage"], "event">>,
];

// An ES module handler: handler: esm.handler loads esm.mjs with import().
export const handler = async (event, context) => `esm saw ${event.length} bytes for ${context.requestId.length > 0}`;

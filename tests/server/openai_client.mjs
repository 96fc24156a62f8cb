// openai_client.mjs — `moeflash serve` driven by the official `openai` npm
// package, unchanged: a non-streaming chat, a streaming chat, a tool-call
// round trip (the tool's result fed back), the model list and the client's
// error classes. Run by tests/test_server.c against a server started with
// --test-hooks on the golden random-weight model; `mf_test_reply` makes the
// model generate a given text (a random model would never call a tool).
//
//   node openai_client.mjs BASE_URL API_KEY MODEL   (exit 0: all passed)
import OpenAI from 'openai';

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, timeout: 60_000, maxRetries: 0 });
// The stream helper lives under `beta` in the 4.x line (Node 18, Debian 12's).
const streamHelper = (body) => (client.chat.completions.stream ? client.chat.completions : client.beta.chat.completions).stream(body);
let checks = 0;
function check(cond, what, detail) {
  checks++;
  if (!cond) {
    console.error(`FAIL: ${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
    process.exit(1);
  }
}

// The model list.
const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === model && models.data[0].object === 'model', 'models.list', models.data);

// 1. A non-streaming chat (greedy; a random model says random things).
const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hello!' },
];
const r1 = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
check(r1.object === 'chat.completion' && r1.id.startsWith('chatcmpl-') && r1.model === model, 'chat envelope', r1);
check(r1.choices.length === 1 && r1.choices[0].index === 0 && r1.choices[0].message.role === 'assistant', 'chat choice', r1.choices);
check(typeof r1.choices[0].message.content === 'string', 'chat content', r1.choices[0].message);
check(['stop', 'length'].includes(r1.choices[0].finish_reason), 'chat finish_reason', r1.choices[0].finish_reason);
check(r1.usage.prompt_tokens > 0 && r1.usage.completion_tokens <= 8 &&
      r1.usage.total_tokens === r1.usage.prompt_tokens + r1.usage.completion_tokens, 'chat usage', r1.usage);

// 2. The same chat streamed: the same greedy text, usage in the last chunk.
const stream = await client.chat.completions.create({
  model, messages, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let text = '', role = '', finish = null, usage = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  check(chunk.object === 'chat.completion.chunk', 'chunk object', chunk);
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta.role) role = c.delta.role;
    text += c.delta.content ?? '';
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(role === 'assistant' && chunks >= 3, 'stream role and chunks', { role, chunks });
check(text === r1.choices[0].message.content, 'streamed text equals the non-streamed text', { text, want: r1.choices[0].message.content });
check(finish === r1.choices[0].finish_reason, 'stream finish_reason', finish);
check(usage && usage.completion_tokens === r1.usage.completion_tokens, 'stream usage', usage);

// The SDK's stream helper assembles the same message.
const helper = streamHelper({ model, messages, max_tokens: 8, temperature: 0 });
const final = await helper.finalChatCompletion();
check(final.choices[0].message.content === r1.choices[0].message.content, 'stream helper', final.choices[0].message);

// 3. A tool call, its result fed back, the final answer.
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
const convo = [{ role: 'user', content: 'What is the weather in Paris?' }];
const t1 = await client.chat.completions.create({
  model, messages: convo, tools, tool_choice: 'auto',
  mf_test_reply: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
});
const msg = t1.choices[0].message;
check(t1.choices[0].finish_reason === 'tool_calls', 'tool finish_reason', t1.choices[0]);
check(msg.content === null && msg.tool_calls?.length === 1, 'tool message', msg);
const call = msg.tool_calls[0];
check(call.type === 'function' && call.id.startsWith('call_') && call.function.name === 'get_weather', 'tool call', call);
check(JSON.parse(call.function.arguments).city === 'Paris', 'tool arguments', call.function.arguments);
convo.push(msg);
convo.push({ role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temperature_c: 21 }) });
const t2 = await client.chat.completions.create({
  model, messages: convo, tools, mf_test_reply: 'It is 21 °C in Paris.',
});
check(t2.choices[0].message.content === 'It is 21 °C in Paris.' && t2.choices[0].finish_reason === 'stop', 'tool answer', t2.choices[0]);
check(t2.usage.prompt_tokens > t1.usage.prompt_tokens && t2.usage.prompt_tokens_details.cached_tokens > 0,
      'the second turn reuses the first turn\'s KV cache', t2.usage);

// The tool call streamed: the SDK accumulates the deltas into tool_calls.
const ts = streamHelper({
  model, messages: convo.slice(0, 1), tools,
  mf_test_reply: 'Checking.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
});
const tf = await ts.finalChatCompletion();
const sm = tf.choices[0].message;
check(sm.content === 'Checking.' && sm.tool_calls?.length === 1 && JSON.parse(sm.tool_calls[0].function.arguments).city === 'Oslo',
      'streamed tool call', sm);
check(tf.choices[0].finish_reason === 'tool_calls', 'streamed tool finish_reason', tf.choices[0]);

// Completions.
const c1 = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 4, mf_test_reply: ' there was' });
check(c1.object === 'text_completion' && c1.choices[0].text === ' there was', 'completion', c1);

// Errors arrive as the SDK's error classes, with OpenAI's error body.
try {
  await client.chat.completions.create({ model: 'no-such-model', messages });
  check(false, 'unknown model must fail');
} catch (e) {
  check(e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found', 'unknown model error', e.message);
}
try {
  await client.chat.completions.create({ model, messages, n: 2 });
  check(false, 'n=2 must fail');
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.param === 'n', 'n=2 error', e.message);
}
try {
  await new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 }).models.list();
  check(false, 'a wrong key must fail');
} catch (e) {
  check(e instanceof OpenAI.AuthenticationError && e.status === 401, 'wrong key error', e.message);
}

console.log(`openai client: all checks passed (${checks})`);

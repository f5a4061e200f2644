// The official openai npm package against the gateway: create, stream, and a client-tool loop.
// Usage: node openai_client.mjs <base_url> <api_key> <model>; prints one JSON line of results.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30000 });

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather in a city.",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
};

const created = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "hello from node" }],
});

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "stream to node" }],
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let usage = null;
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
  usage = chunk.usage ?? usage;
}

// The agent loop every framework runs: call, run the requested tools, call again.
const messages = [{ role: "user", content: "What is the weather in Paris?" }];
let rounds = 0;
let final = null;
while (rounds < 4) {
  rounds += 1;
  const completion = await client.chat.completions.create({ model, messages, tools: [weather] });
  const choice = completion.choices[0];
  messages.push(choice.message);
  if (choice.finish_reason !== "tool_calls") {
    final = choice.message.content;
    break;
  }
  for (const call of choice.message.tool_calls) {
    const args = JSON.parse(call.function.arguments);
    messages.push({ role: "tool", tool_call_id: call.id, content: `18C and sunny in ${args.city}` });
  }
}

console.log(
  JSON.stringify({
    created: created.choices[0].message.content,
    streamed,
    usage,
    rounds,
    final,
  }),
);

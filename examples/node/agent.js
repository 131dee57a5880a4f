// A Kolony agent in Node.js, written from docs/protocol.md alone: plain Kafka and JSON,
// with kafkajs, which has consumer groups but cannot assign a partition.
//
//   cd examples/node && npm install && node agent.js
//
// It registers with the capability "shout", heartbeats, takes the tasks delivered to its
// partition of the inbox (reporting working, then completed with the text upper-cased),
// and leaves after --tasks tasks. Kafka is KOLONY_BOOTSTRAP_SERVERS, else what `kolony up`
// wrote to .kolony/hub.json, else 127.0.0.1:9092.
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const { Kafka, logLevel } = require("kafkajs");
const murmur2 = require("kafkajs/src/producer/partitioners/default/murmur2");

process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1"; // v2's default is Java's murmur2: what we want

function whereIsKafka() {
  if (process.env.KOLONY_BOOTSTRAP_SERVERS) return process.env.KOLONY_BOOTSTRAP_SERVERS;
  try {
    const hub = path.join(process.env.KOLONY_DATA_DIR || ".kolony", "hub.json");
    return JSON.parse(fs.readFileSync(hub, "utf8")).bootstrap_servers;
  } catch {
    return "127.0.0.1:9092";
  }
}

const prefix = process.env.KOLONY_TOPIC_PREFIX || "kolony";
const partitions = Number(process.env.KOLONY_INBOX_PARTITIONS || 32); // GET /system/info says
const tasksArg = process.argv.indexOf("--tasks");
const leaveAfter = tasksArg > 0 ? Number(process.argv[tasksArg + 1]) : Infinity;

const card = { name: "node-agent", version: "1.0.0", skills: [{ id: "shout", name: "Shout", tags: ["text"] }] };
const agentId = "node-agent-1"; // any valid id; Kolony's own tools derive one from the card
const inbox = `${prefix}.agents.inbox`;
const mine = (murmur2(agentId) & 0x7fffffff) % partitions;

const kafka = new Kafka({ brokers: whereIsKafka().split(","), logLevel: logLevel.WARN });
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
const consumer = kafka.consumer({ groupId: `${prefix}.agent.${agentId}` });
const envelope = () => ({ command_id: crypto.randomUUID(), issued_at: new Date().toISOString() });
const send = (topic, key, body) =>
  producer.send({ topic: `${prefix}.${topic}`, messages: [{ key, value: JSON.stringify(body) }] });

async function main() {
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: inbox, fromBeginning: false });
  // Alone in its group, it is given every partition: it keeps its own and pauses the rest.
  consumer.on(consumer.events.GROUP_JOIN, () => {
    const others = [...Array(partitions).keys()].filter((p) => p !== mine);
    consumer.pause([{ topic: inbox, partitions: others }]);
  });
  // Its first fetch has placed it at the end of its partition (or its committed offset).
  const reading = new Promise((resolve) => consumer.on(consumer.events.FETCH, resolve));
  let done = 0;
  let beating;
  const leave = async () => {
    clearInterval(beating);
    await send("agents.commands", agentId, { type: "agent.deregister", ...envelope(), agent_id: agentId, reason: "done" });
    console.log("deregistered");
    await consumer.disconnect();
    await producer.disconnect();
  };
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      if (partition !== mine || message.key.toString() !== agentId) return;
      const item = JSON.parse(message.value.toString());
      if (item.type !== "inbox.task_assigned") return; // messages, updates, memory: not used here
      const task = item.task;
      const report = (state, extra) =>
        send("tasks.commands", task.id, { type: "task.update_status", ...envelope(), task_id: task.id, state, agent_id: agentId, ...extra });
      await report("working", {});
      await report("completed", { result: { text: String((task.input || {}).text || "").toUpperCase() } });
      console.log(`completed ${task.id}`);
      if (++done >= leaveAfter) setImmediate(leave);
    },
  });
  await reading; // registered only once the inbox is read, so no assignment is missed
  await send("agents.commands", agentId, { type: "agent.register", ...envelope(), agent_id: agentId, ttl_seconds: 30, card });
  console.log(`registered ${agentId}; reading ${inbox} partition ${mine}`);
  beating = setInterval(() => send("agents.commands", agentId, { type: "agent.heartbeat", ...envelope(), agent_id: agentId }), 10_000);
}

main().catch((error) => {
  console.error(`node-agent: ${error.message}`);
  process.exit(1);
});

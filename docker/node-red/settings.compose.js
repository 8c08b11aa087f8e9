// Node-RED settings of the docker compose stack (docker/docker-compose.yml).
//
// The editor is reached through the TLS proxy only, and asks for NODERED_ADMIN_USER /
// NODERED_ADMIN_PASSWORD, both written into .env by `datasock init`. Node-RED does not
// start without them, nor without NODERED_CREDENTIAL_SECRET (the key of its flows'
// credentials). On the first start the datasock example flow is copied into /data.
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

function required(name) {
    const value = process.env[name];
    if (!value || value.length < 16) {
        throw new Error(`${name} is missing or shorter than 16 characters: run \`datasock init\``);
    }
    return value;
}

const adminUser = process.env.NODERED_ADMIN_USER || "admin";
const adminPassword = required("NODERED_ADMIN_PASSWORD");
const userDir = process.env.NODERED_USER_DIR || "/data";
const exampleFlow = process.env.NODERED_EXAMPLE_FLOW || "/datasock/flows.json";
const flowFile = path.join(userDir, "flows.json");

if (!fs.existsSync(flowFile) && fs.existsSync(exampleFlow)) {
    fs.copyFileSync(exampleFlow, flowFile);
}

// compares digests, so the time taken says nothing about the password
function same(a, b) {
    const digest = (text) => crypto.createHash("sha256").update(String(text)).digest();
    return crypto.timingSafeEqual(digest(a), digest(b));
}

module.exports = {
    uiHost: "0.0.0.0",   // the internal network only: no port of this container is published
    uiPort: 1880,
    userDir: userDir,
    flowFile: "flows.json",
    flowFilePretty: true,
    credentialSecret: required("NODERED_CREDENTIAL_SECRET"),
    httpNodeRoot: false,
    adminAuth: {
        type: "credentials",
        users: (username) => Promise.resolve(
            username === adminUser ? { username: adminUser, permissions: "*" } : null),
        authenticate: (username, password) => Promise.resolve(
            same(username, adminUser) && same(password, adminPassword)
                ? { username: adminUser, permissions: "*" } : null),
    },
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    logging: { console: { level: "info", metrics: false, audit: false } },
    functionGlobalContext: {},
};

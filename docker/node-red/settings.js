// Node-RED settings for running the datasock example flow headless (tests, CI, containers):
// no editor, no HTTP endpoints (so no HTTP port at all), no telemetry, logs on the console.
module.exports = {
    httpAdminRoot: false,
    httpNodeRoot: false,
    credentialSecret: false,
    flowFilePretty: true,
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    logging: { console: { level: "info", metrics: false, audit: false } },
    functionGlobalContext: {},
};

// The hello and world services of the demo: `node server.js PORT MESSAGE`.
//
// Every answer is MESSAGE, with the instance that served it (the host name: a container's ID
// under Docker, the instance's name under run-local.py) in the X-Served-By header, so that a
// client can see the load balancing. GET /health answers 200 for pilot's health check.
// No npm dependencies: only Node's own modules.
'use strict';

const http = require('http');
const os = require('os');

const port = Number(process.argv[2] || 3001);
const message = process.argv[3] || 'Hello';
const instance = os.hostname();

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Served-By': instance,
  });
  res.end(message);
});

server.listen(port, () => {
  console.log(`${message} from ${instance} on port ${port}`);
});

// pilot stops the job with SIGTERM: close the listener and let open requests finish.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});

// ipx 3 as Nuxt Image runs it: the HTTP storage (sources from 127.0.0.1 only) behind its node server.
// Started by bench/peers.py with PORT set; it has no result cache, so every request renders.
import { createServer } from "node:http";
import { createIPX, createIPXNodeServer, ipxHttpStorage } from "ipx";

const ipx = createIPX({ httpStorage: ipxHttpStorage({ domains: ["127.0.0.1"] }) });
createServer(createIPXNodeServer(ipx)).listen(Number(process.env.PORT), "127.0.0.1");

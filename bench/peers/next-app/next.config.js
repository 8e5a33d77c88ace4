// Next.js 16's image optimizer configured for the bench's job: one 200 px width at quality 65,
// sources from the loopback origin (any port), private addresses allowed for it.
module.exports = {
  images: {
    remotePatterns: [{ protocol: "http", hostname: "127.0.0.1" }],
    dangerouslyAllowLocalIP: true,
    qualities: [65],
    imageSizes: [200],
    deviceSizes: [640],
  },
};

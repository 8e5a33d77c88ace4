import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run build:lib`: the picker as an ES module for other React apps (dist-lib/). React, ReactDOM and
// react-window stay the host's (peer / regular dependencies), and the CSS is a separate file the host
// imports on purpose (`thumbs-picker/picker.css`): importing the JS has no style side effects.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist-lib",
    emptyOutDir: true,
    target: "es2022",
    copyPublicDir: false,
    lib: {
      entry: "src/picker/index.ts",
      formats: ["es"],
      fileName: () => "thumbs-picker.js",
      cssFileName: "picker",
    },
    rollupOptions: {
      external: [/^react($|\/)/, /^react-dom($|\/)/, /^react-window($|\/)/],
    },
  },
});

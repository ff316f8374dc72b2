{
  # The portable CPU-only addon (what prebuildify packages). CMakeLists.txt builds the same
  # sources plus native/cuda/ into the full addon.
  "targets": [
    {
      "target_name": "pit_cpu",
      "sources": [
        "<!@(node -p \"['core','cpu','binding'].flatMap(d => require('fs').readdirSync('native/' + d).filter(f => f.endsWith('.cc')).sort().map(f => 'native/' + d + '/' + f)).join(' ')\")"
      ],
      "include_dirs": ["native"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NDEBUG"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp-simd", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-psabi"],
      "cflags!": ["-O2"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3"]
      }
    }
  ]
}

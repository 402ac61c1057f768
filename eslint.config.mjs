import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.flywheel/**', '.tmp/**', 'bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's describe/it return promises the runner itself awaits.
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code is replayed deterministically inside Temporal's sandbox: no Node built-ins, no I/O, no lib/ code
    // that touches disks or networks. Only pure lib/contracts and types may come in.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'workflows must not use Node built-ins (determinism).',
          })),
          patterns: [
            {
              group: ['../lib/*', '!../lib/contracts', '../lib/contracts/*/**'],
              message: 'workflows may import only lib/contracts (pure); I/O belongs in activities.',
            },
            {
              group: ['@aws-sdk/*', '@temporalio/worker', '@temporalio/client', '@temporalio/activity'],
              message: 'no I/O or worker/client code in workflows.',
            },
            {
              group: ['../activities', '../activities/*'],
              allowTypeImports: true,
              message: 'import activities as types only: proxyActivities<typeof ...>.',
            },
          ],
        },
      ],
      'no-restricted-globals': ['error', 'setImmediate', 'process', 'require', 'Buffer'],
    },
  },
  {
    // Activities are adapters called by workflows; what both need (a spec, a result type) lives in lib/contracts.
    files: ['activities/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../workflows', '../workflows/*'],
              message: 'activities never import workflows/: put what both need in lib/contracts.',
            },
          ],
        },
      ],
    },
  },
  {
    // The typed client is embedded in services: no worker, no application assembly.
    files: ['client/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../worker', '../worker/*', '../app', '../app/*'],
              message: 'client/ never imports worker/ or app/: shared Temporal plumbing lives in temporal/.',
            },
          ],
        },
      ],
    },
  },
  {
    // lib/ is the domain, free of Temporal.
    files: ['lib/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@temporalio/*'], message: 'lib/ never imports @temporalio.' }] },
      ],
    },
  },
);

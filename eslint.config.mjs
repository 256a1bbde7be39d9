import js from '@eslint/js'
import prettier from 'eslint-config-prettier'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', 'bench/.work/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'use named exports' }],
    },
  },
  {
    files: ['jest.config.ts', 'jest.global-setup.ts', 'jest.global-teardown.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    files: ['packages/core/src/**/*.ts'],
    rules: {
      // no driver, and no OpenTelemetry SDK or exporter (those are the app's choice; @dbpool/http has them)
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            'pg',
            'pg/*',
            'better-sqlite3',
            '@dbpool/postgres',
            '@dbpool/sqlite',
            '@dbpool/http',
            '@opentelemetry/sdk-*',
            '@opentelemetry/exporter-*',
          ],
        },
      ],
    },
  },
  prettier,
)

package io.pockettune.fleet; final class Placeholder {}
